// Starts the dashboard server (cli/compose/serve.ts) in a child process for the browser tests, the way the CLI
// would call serve(), and stops it with SIGTERM (serve closes the collector, sockets and Next cleanly).
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { ServeOptions } from '../../../cli/compose/serve.ts';
import { stopChild } from '../../support/stop-child.ts';

const root = fileURLToPath(new URL('../../..', import.meta.url));

export interface ServerHandle {
  url: string;
  mode: 'live' | 'replay';
  db: string;
  status: { level: string; message: string; fix?: string };
  /** The web process (the dashboard) — the child's child. */
  webPid: number | null;
  access: { token: string; file: string; created: boolean } | null;
  notes: string[];
  child: ChildProcess;
  output(): string;
  stop(): Promise<number | null>;
}

export async function startServer(
  opts: ServeOptions,
  spawnOpts: { uid?: number; gid?: number; timeoutMs?: number; /** Command prefix, e.g. ['ip', 'netns', 'exec', 'ns1']. */ wrap?: string[] } = {},
): Promise<ServerHandle> {
  const argv = [process.execPath, '--import', 'tsx', 'test/e2e/support/serve-child.ts', JSON.stringify({ host: '127.0.0.1', port: 0, ...opts })];
  const [cmd, ...args] = [...(spawnOpts.wrap ?? []), ...argv];
  const child = spawn(cmd!, args, {
    cwd: root,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, PINWATCH_LOG_LEVEL: process.env.PINWATCH_LOG_LEVEL ?? 'info' },
    uid: spawnOpts.uid,
    gid: spawnOpts.gid,
  });
  let out = '';
  child.stdout!.setEncoding('utf8').on('data', (c: string) => (out += c));
  child.stderr!.setEncoding('utf8').on('data', (c: string) => (out += c));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const timeoutMs = spawnOpts.timeoutMs ?? 180_000;
  const info = await new Promise<Omit<ServerHandle, 'child' | 'output' | 'stop'>>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server not listening after ${timeoutMs} ms:\n${out}`)), timeoutMs);
    const onData = () => {
      const m = /^PINWATCH_SERVE (.*)$/m.exec(out);
      if (m) {
        clearTimeout(timer);
        child.stdout!.off('data', onData);
        resolve(JSON.parse(m[1]!));
      }
    };
    child.stdout!.on('data', onData);
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`server exited (${code}) before listening:\n${out}`));
    });
  });
  return {
    ...info,
    child,
    output: () => out,
    stop: () => stopChild(child, exited),
  };
}
