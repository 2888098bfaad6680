// Runs `pinwatch record` as a child process the way a user would, for live tests and benchmarks.
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { stopChild } from './stop-child.ts';

const root = fileURLToPath(new URL('../..', import.meta.url));

export interface RecordHandle {
  child: ChildProcess;
  stdout(): string;
  stderr(): string;
  /** SIGINT, then the exit code (record must flush and exit 0). */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

export async function startRecord(db: string, extraArgs: string[] = [], readyTimeoutMs = 90_000): Promise<RecordHandle> {
  const child = spawn(process.execPath, ['bin/pinwatch.js', 'record', '--db', db, ...extraArgs], {
    cwd: root,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: process.env,
  });
  let out = '';
  let err = '';
  child.stdout!.setEncoding('utf8').on('data', (c: string) => (out += c));
  child.stderr!.setEncoding('utf8').on('data', (c: string) => (err += c));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`record not ready after ${readyTimeoutMs} ms\nstdout:\n${out}\nstderr:\n${err}`)), readyTimeoutMs);
    const onData = () => {
      if (/\bready\b/.test(out)) {
        clearTimeout(timer);
        child.stdout!.off('data', onData);
        resolve();
      }
    };
    child.stdout!.on('data', onData);
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`record exited (${code}) before ready\nstdout:\n${out}\nstderr:\n${err}`));
    });
  });
  return {
    child,
    stdout: () => out,
    stderr: () => err,
    // A collector that has not exited 30 s after the signal is killed, and the stderr says so (exit code null).
    stop: (signal: NodeJS.Signals = 'SIGINT') =>
      stopChild(child, exited, { signal, onKill: () => (err += `\n[test harness: no exit 30 s after ${signal}; sent SIGKILL]\n`) }),
  };
}
