// Starts and keeps the web process (web/server/main.ts) running for `pinwatch serve`. It is spawned, not
// imported, so the privileged capture process never loads the dashboard's code; an IPC channel carries its
// WebConfig (the token and TLS key never appear in argv or the environment) and its `listening` answer. If it
// dies, capture goes on and it is started again (1 s, 2 s, 4 s …); five deaths within a minute and it stays
// down, said in the log and the status banner of the next start.
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { WebConfig } from '../../web/server/serve.ts';

const WEB_MAIN = fileURLToPath(new URL('../../web/server/main.ts', import.meta.url));
const MAX_RESTARTS = 5;
const RESTART_WINDOW_MS = 60_000;
const STOP_TIMEOUT_MS = 15_000;

type FromWeb = { t: 'ready' } | { t: 'listening'; url: string } | { t: 'failed'; message: string; code: string | null };

export class WebStartError extends Error {
  constructor(
    message: string,
    readonly code: string | null,
  ) {
    super(message);
    this.name = 'WebStartError';
  }
}

export interface WebProcessOptions {
  log: { info(o: unknown, m?: string): void; warn(o: unknown, m?: string): void; error(o: unknown, m?: string): void };
  /** Called after the web process came back from a crash (its URL is unchanged). */
  onRestart?: (url: string) => void;
  onGaveUp?: (why: string) => void;
}

export class WebProcess {
  private child: ChildProcess | null = null;
  private stopping = false;
  private readonly deaths: number[] = [];
  private cfg: WebConfig;
  private dbIsReady = false;
  url = '';

  constructor(
    cfg: WebConfig,
    private readonly opts: WebProcessOptions,
  ) {
    this.cfg = cfg;
  }

  /** pid of the running web process (tests check its uid). */
  pid(): number | null {
    return this.child?.pid ?? null;
  }

  /** Resolves with the URL once the web process listens. */
  async start(): Promise<string> {
    this.url = await this.spawnOnce();
    // A restart must come back on the same port (pages reconnect to the URL they know).
    this.cfg = { ...this.cfg, port: Number(new URL(this.url).port) };
    return this.url;
  }

  private spawnOnce(): Promise<string> {
    // tsx by absolute path: the service's working directory need not be the repository.
    const tsx = fileURLToPath(import.meta.resolve('tsx'));
    const child = spawn(process.execPath, ['--import', tsx, WEB_MAIN], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], env: process.env });
    this.child = child;
    return new Promise((resolve, reject) => {
      let settled = false;
      child.on('message', (m: FromWeb) => {
        if (m?.t === 'ready') {
          child.send({ t: 'config', cfg: this.cfg });
          if (this.dbIsReady) child.send({ t: 'db-ready' });
        }
        else if (m?.t === 'listening' && !settled) {
          settled = true;
          resolve(m.url);
        } else if (m?.t === 'failed' && !settled) {
          settled = true;
          reject(new WebStartError(m.message, m.code));
        }
      });
      child.once('exit', (code, signal) => {
        if (this.child === child) this.child = null;
        if (!settled) {
          settled = true;
          reject(new WebStartError(`the web process exited (${signal ?? `code ${code}`}) before listening`, null));
          return;
        }
        if (!this.stopping) this.died(code, signal);
      });
    });
  }

  private died(code: number | null, signal: string | null): void {
    const now = Date.now();
    this.deaths.push(now);
    while (this.deaths.length && this.deaths[0]! < now - RESTART_WINDOW_MS) this.deaths.shift();
    if (this.deaths.length >= MAX_RESTARTS) {
      const why = `the web process died ${this.deaths.length} times within a minute (last: ${signal ?? `code ${code}`}); capture goes on, the dashboard stays down`;
      this.opts.log.error({ code, signal }, why);
      this.opts.onGaveUp?.(why);
      return;
    }
    const delay = 1000 * 2 ** (this.deaths.length - 1);
    this.opts.log.warn({ code, signal, restartInMs: delay }, 'the web process died; capture goes on, restarting it');
    setTimeout(() => {
      if (this.stopping) return;
      this.spawnOnce().then(
        (url) => {
          this.opts.log.info({ url }, 'web process restarted');
          this.opts.onRestart?.(url);
        },
        (err: Error) => {
          this.opts.log.error({ err: err.message }, 'restarting the web process failed');
          if (!this.stopping) this.died(null, null);
        },
      );
    }, delay); // not unref'd: in replay mode this timer is all that keeps `serve` alive until the restart
  }

  /** The collector's SQLite file exists (or never will): the web process opens it, then drops root. */
  dbReady(): void {
    this.dbIsReady = true;
    if (this.child?.connected) this.child.send({ t: 'db-ready' });
  }

  /** Asks the web process to close (it closes its sockets so pages reconnect later); SIGKILL after 15 s. */
  async stop(): Promise<void> {
    this.stopping = true;
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    if (child.connected) child.send({ t: 'shutdown' });
    else child.kill('SIGTERM');
    const t = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
    await exited;
    clearTimeout(t);
  }
}
