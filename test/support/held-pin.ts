// The held-pin fixture (test/live/fixtures/held-pin.c) and the process helpers the supervision live tests
// share: a pinning process that waits for a signal before its hazard, the bpftrace children of a `pinwatch
// record`, and waiting on a condition.
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { buildSource, parseFacts, type Fact } from '../../scenarios/index.ts';

const SOURCE = fileURLToPath(new URL('../live/fixtures/held-pin.c', import.meta.url));

export interface HeldPin {
  child: ChildProcess;
  pid: number;
  facts(): Fact[];
  fact(step: string): Promise<Fact>;
  /** SIGUSR1: MADV_DONTNEED of page 1 (then 2, 3, … on later calls), then a write (divergence). Resolves with this call's "diverged" fact. */
  diverge(): Promise<Fact>;
  /** SIGUSR2: fork HELD_FORKS children (waits up to timeoutMs for them: forks are slow on a loaded host). */
  fork(timeoutMs?: number): Promise<Fact>;
  stop(): Promise<void>;
}

/** `pinnedTimeoutMs`: a 1 GiB buffer of 4 KiB pages takes long to touch and register on a loaded host. */
export async function startHeldPin(env: Record<string, string> = {}, pinnedTimeoutMs = 30_000): Promise<HeldPin> {
  const bin = await buildSource(SOURCE, 'held-pin');
  const child = spawn(bin, [], { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, ...env } });
  let out = '';
  child.stdout!.setEncoding('utf8').on('data', (c: string) => (out += c));
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const fact = async (step: string, timeoutMs = 30_000) => {
    await waitFor(() => parseFacts(out).some((f) => f.step === step), timeoutMs, `held-pin fact ${step}\n${out}`);
    return parseFacts(out).filter((f) => f.step === step).pop()!;
  };
  const h: HeldPin = {
    child,
    pid: child.pid!,
    facts: () => parseFacts(out),
    fact,
    diverge: async () => {
      const before = parseFacts(out).filter((f) => f.step === 'diverged').length;
      child.kill('SIGUSR1');
      await waitFor(() => parseFacts(out).filter((f) => f.step === 'diverged').length > before, 30_000, `held-pin fact diverged #${before + 1}\n${out}`);
      return parseFacts(out).filter((f) => f.step === 'diverged').pop()!;
    },
    fork: async (timeoutMs?: number) => {
      child.kill('SIGUSR2');
      return fact('forked', timeoutMs);
    },
    stop: async () => {
      if (child.exitCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
  await fact('pinned', pinnedTimeoutMs);
  return h;
}

/** Poll until fn() is true; throws with `what` after timeoutMs. */
export async function waitFor(fn: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const t0 = Date.now();
  while (!fn()) {
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export interface BpftraceChild {
  pid: number;
  /** The fault watcher (its program traces exceptions:page_fault_user) or the main set. */
  role: 'main' | 'faults';
}

/** bpftrace processes whose parent is `parent` (a pinwatch record), by role. */
export function bpftraceChildren(parent: number): BpftraceChild[] {
  const out: BpftraceChild[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid !== parent) continue;
      const argv = readFileSync(`/proc/${name}/cmdline`, 'utf8').split('\0').filter(Boolean);
      if (!argv.some((a) => a.endsWith('bpftrace'))) continue;
      const program = readFileSync(argv[argv.length - 1], 'utf8');
      out.push({ pid: Number(name), role: program.includes('page_fault_user') ? 'faults' : 'main' });
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

export function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}
