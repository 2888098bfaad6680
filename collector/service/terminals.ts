// The bundled reproducers the scenario page may start, run here in the privileged collector process (pinning
// memory needs root: RLIMIT_MEMLOCK, io_uring buffer registration) in pseudo-terminals. Only names from the
// project's own catalog (scenarios/) are accepted; the command comes from the catalog (built with cc on demand),
// nothing else is ever spawned. The web process only relays the browser's request and the terminal's output.
import { randomUUID } from 'node:crypto';
import { tmpdir } from 'node:os';
import type { IPty } from 'node-pty';
import type { TermExit, TermRun, TermStartReply } from '../../schema/link.ts';

interface Run {
  run: TermRun;
  pty: IPty;
  owner: string;
}

export interface TerminalSink {
  data(owner: string, runId: string, data: string): void;
  exit(owner: string, e: TermExit): void;
}

/** Scenario runs in pseudo-terminals, each tied to the browser socket that started it (killed when it goes). */
export class ScenarioTerminals {
  private readonly runs = new Map<string, Run>();
  private readonly maxRuns: number;

  constructor(maxRuns = 2) {
    // Two cores here: more concurrent reproducers would only disturb each other's timing.
    this.maxRuns = maxRuns;
  }

  async start(owner: string, sink: TerminalSink, name: unknown, cols: unknown, rows: unknown): Promise<TermStartReply> {
    if (typeof name !== 'string' || !/^[a-z0-9][a-z0-9._-]{0,63}$/.test(name)) return { ok: false, error: 'invalid scenario name' };
    let catalog: typeof import('../../scenarios/index.ts');
    try {
      catalog = await import('../../scenarios/index.ts');
    } catch (err) {
      return { ok: false, error: `scenario catalog unavailable: ${(err as Error).message}` };
    }
    if (!catalog.listScenarios().some((s) => s.name === name)) return { ok: false, error: `no scenario named ${name} in the catalog` };
    if (this.runs.size >= this.maxRuns) return { ok: false, error: `${this.runs.size} scenarios already running; wait for one to exit` };

    let command: { file: string; args: string[] };
    try {
      command = await catalog.scenarioCommand(name);
    } catch (err) {
      return { ok: false, error: `cannot build ${name}: ${(err as Error).message}` };
    }
    const { spawn } = await import('node-pty');
    const c = clampInt(cols, 20, 400, 120);
    const r = clampInt(rows, 5, 200, 30);
    let pty: IPty;
    try {
      pty = spawn(command.file, command.args, {
        name: 'xterm-256color',
        cols: c,
        rows: r,
        cwd: tmpdir(),
        env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/root', TERM: 'xterm-256color', LANG: 'C.UTF-8' },
      });
    } catch (err) {
      return { ok: false, error: `cannot start ${name}: ${(err as Error).message}` };
    }
    const run: TermRun = {
      runId: randomUUID(),
      name,
      pid: pty.pid,
      command: [command.file, ...command.args].join(' '),
      startedWallMs: Date.now(),
    };
    this.runs.set(run.runId, { run, pty, owner });
    pty.onData((d) => sink.data(owner, run.runId, d));
    pty.onExit(({ exitCode, signal }) => {
      this.runs.delete(run.runId);
      sink.exit(owner, { runId: run.runId, exitCode, signal: signal ?? null });
    });
    return { ok: true, run };
  }

  resize(owner: string, runId: unknown, cols: unknown, rows: unknown): void {
    const r = typeof runId === 'string' ? this.runs.get(runId) : undefined;
    if (r && r.owner === owner) r.pty.resize(clampInt(cols, 20, 400, 120), clampInt(rows, 5, 200, 30));
  }

  stop(owner: string, runId: unknown): void {
    const r = typeof runId === 'string' ? this.runs.get(runId) : undefined;
    if (r && r.owner === owner) r.pty.kill('SIGTERM');
  }

  /** The owner's socket went away: its reproducers go too. */
  stopOwner(owner: string): void {
    for (const r of this.runs.values()) if (r.owner === owner) r.pty.kill('SIGTERM');
  }

  closeAll(): void {
    for (const r of this.runs.values()) r.pty.kill('SIGKILL');
    this.runs.clear();
  }

  active(): TermRun[] {
    return [...this.runs.values()].map((r) => r.run);
  }
}

function clampInt(v: unknown, lo: number, hi: number, dflt: number): number {
  const n = typeof v === 'number' && Number.isFinite(v) ? Math.round(v) : dflt;
  return Math.min(hi, Math.max(lo, n));
}
