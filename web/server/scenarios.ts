// The bundled reproducers the scenario page may start, and their terminals. Only names from the project's own
// catalog (scenarios/index.ts) are accepted, checked here on the server; the command comes from the catalog
// (scenarioCommand builds the C program on demand), runs under node-pty, and nothing else is ever spawned.
import { randomUUID } from 'node:crypto';
import { tmpdir } from 'node:os';
import type { IPty } from 'node-pty';
import { SEVERITIES, type Severity } from '../../schema/anomalies.ts';
import type { ScenarioEntry, TermExit, TermRun, TermStartReply } from '../shared/wire.ts';

const SEVERITY_SET: ReadonlySet<string> = new Set(SEVERITIES);

/** What the dashboard uses of scenarios/index.ts. */
interface ScenarioModule {
  listScenarios(): unknown[] | Promise<unknown[]>;
  scenarioCommand(name: string): Promise<{ file: string; args: string[] }>;
}

let catalogModule: Promise<ScenarioModule> | null = null;
function loadCatalog(): Promise<ScenarioModule> {
  catalogModule ??= import('../../scenarios/index.ts') as unknown as Promise<ScenarioModule>;
  return catalogModule;
}

function str(v: unknown): string {
  return typeof v === 'string' ? v : '';
}

/** Normalises a catalog entry to what the page shows (the catalog's own shape may carry more). */
function toEntry(raw: unknown): ScenarioEntry | null {
  if (!raw || typeof raw !== 'object') return null;
  const o = raw as Record<string, unknown>;
  const name = str(o.name);
  if (!name) return null;
  const expect = Array.isArray(o.expect) ? o.expect : [];
  return {
    name,
    title: str(o.title) || str(o.summary) || name,
    description: str(o.description) || str(o.what) || str(o.summary),
    expected: o.silent
      ? []
      : expect
          .map((e) => e as Record<string, unknown>)
          .filter((e) => str(e?.rule))
          .map((e) => ({ rule: str(e.rule), severity: SEVERITY_SET.has(str(e.severity)) ? (str(e.severity) as Severity) : null })),
    seenOnKernel: str(o.seenOnKernel),
    seeds: Array.isArray(o.seeds) ? o.seeds.filter((x): x is string => typeof x === 'string') : [],
  };
}

export async function listScenarioEntries(): Promise<ScenarioEntry[]> {
  const mod = await loadCatalog();
  const list = await mod.listScenarios();
  return list.map(toEntry).filter((e): e is ScenarioEntry => e !== null);
}

interface Run {
  run: TermRun;
  pty: IPty;
  owner: string;
}

export interface TerminalSink {
  data(runId: string, data: string): void;
  exit(e: TermExit): void;
}

/** Scenario runs in pseudo-terminals, each tied to the socket that started it (killed when it goes). */
export class ScenarioTerminals {
  private readonly runs = new Map<string, Run>();
  private readonly maxRuns: number;

  constructor(maxRuns = 2) {
    // Two cores here: more concurrent reproducers would only disturb each other's timing.
    this.maxRuns = maxRuns;
  }

  async start(owner: string, sink: TerminalSink, name: unknown, cols: unknown, rows: unknown): Promise<TermStartReply> {
    if (typeof name !== 'string' || !/^[a-z0-9][a-z0-9._-]{0,63}$/.test(name)) return { ok: false, error: 'invalid scenario name' };
    let entries: ScenarioEntry[];
    try {
      entries = await listScenarioEntries();
    } catch (err) {
      return { ok: false, error: `scenario catalog unavailable: ${(err as Error).message}` };
    }
    if (!entries.some((e) => e.name === name)) return { ok: false, error: `no scenario named ${name} in the catalog` };
    if (this.runs.size >= this.maxRuns) return { ok: false, error: `${this.runs.size} scenarios already running; wait for one to exit` };

    let command: { file: string; args: string[] };
    try {
      command = await (await loadCatalog()).scenarioCommand(name);
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
    pty.onData((d) => sink.data(run.runId, d));
    pty.onExit(({ exitCode, signal }) => {
      this.runs.delete(run.runId);
      sink.exit({ runId: run.runId, exitCode, signal: signal ?? null });
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
