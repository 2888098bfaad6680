// Process helpers for the harness: time a whole process (spawn → exit, wall clock), and run a helper
// process in the background until it prints a readiness line.
import { spawn, type ChildProcess } from 'node:child_process';

export interface TimedRun {
  /** Whole-process wall time: from spawn to exit, CLOCK_MONOTONIC. */
  wallNs: number;
  stdout: string;
  stderr: string;
}

/** How the harness launches a traced workload: taskset CPU list and nice value (null: leave as is). */
export interface Placement {
  cpus: string | null;
  nice: number | null;
}

/** argv with taskset / nice prefixes for a placement. */
export function placed(p: Placement, argv: string[]): string[] {
  let out = argv;
  if (p.cpus !== null) out = ['taskset', '-c', p.cpus, ...out];
  if (p.nice !== null) out = ['nice', '-n', String(p.nice), ...out];
  return out;
}

export function timeProcess(argv: string[], opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<TimedRun> {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const child = spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'], env: opts.env ?? process.env });
    let stdout = '';
    let stderr = '';
    child.stdout!.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    child.stderr!.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 300_000);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.once('exit', (code, signal) => {
      const wallNs = Number(process.hrtime.bigint() - t0);
      clearTimeout(timer);
      // 'exit' can precede the last stdout chunk: wait for the streams to close before reading them.
      const done = () => {
        if (code !== 0) reject(new Error(`${argv.join(' ')} failed (${signal ?? code}): ${stderr.trim()}`));
        else resolve({ wallNs, stdout, stderr });
      };
      if (child.stdout!.readableEnded) done();
      else child.stdout!.once('close', done);
    });
  });
}

export interface Background {
  child: ChildProcess;
  stdout(): string;
  stderr(): string;
  /** Resolves with the exit code (or signal name) when the process exits. */
  exited: Promise<number | string | null>;
  /** Signal it and wait for the exit (SIGKILL after graceMs); returns the exit code or signal. */
  stop(signal?: NodeJS.Signals, graceMs?: number): Promise<number | string | null>;
}

/** Start a process and resolve once `ready` matches its stdout (or stderr). */
export function startBackground(
  argv: string[],
  ready: RegExp,
  opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number; cwd?: string; stdin?: 'ignore' | 'pipe' } = {},
): Promise<Background> {
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0], argv.slice(1), { stdio: [opts.stdin ?? 'ignore', 'pipe', 'pipe'], env: opts.env ?? process.env, cwd: opts.cwd });
    let out = '';
    let err = '';
    let settled = false;
    const exited = new Promise<number | string | null>((res) => child.once('exit', (code, signal) => res(signal ?? code)));
    const handle: Background = {
      child,
      exited,
      stdout: () => out,
      stderr: () => err,
      async stop(signal: NodeJS.Signals = 'SIGTERM', graceMs = 30_000) {
        if (child.exitCode === null && child.signalCode === null) child.kill(signal);
        const t = setTimeout(() => child.kill('SIGKILL'), graceMs);
        const r = await exited;
        clearTimeout(t);
        return r;
      },
    };
    const check = () => {
      if (!settled && (ready.test(out) || ready.test(err))) {
        settled = true;
        clearTimeout(timer);
        resolve(handle);
      }
    };
    child.stdout!.setEncoding('utf8').on('data', (c: string) => {
      // Keep only a bounded tail of chatty helpers (bpftrace printing every fault): memory stays flat.
      out = out.length > 1 << 20 ? out.slice(-4096) + c : out + c;
      check();
    });
    child.stderr!.setEncoding('utf8').on('data', (c: string) => {
      err = err.length > 1 << 20 ? err.slice(-4096) + c : err + c;
      check();
    });
    const timer = setTimeout(() => {
      if (settled) return;
      settled = true;
      child.kill('SIGKILL');
      reject(new Error(`${argv.join(' ')}: not ready after ${opts.timeoutMs ?? 60_000} ms\nstdout: ${out.slice(-2000)}\nstderr: ${err.slice(-2000)}`));
    }, opts.timeoutMs ?? 60_000);
    child.once('error', (e) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      reject(e);
    });
    void exited.then((code) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      reject(new Error(`${argv.join(' ')} exited (${code}) before ready\nstdout: ${out.slice(-2000)}\nstderr: ${err.slice(-2000)}`));
    });
  });
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
