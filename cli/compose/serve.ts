// The composition root of `pinwatch serve`: two processes, one command. This (privileged) process builds the
// live session — bpftrace, pagemap reads, the SQLite writer (collector/live-session.ts) and the scenario
// terminals — and publishes it over a Unix socket (collector/service/link-server.ts). The web process
// (web/server/main.ts, spawned by web-process.ts) serves the dashboard as an unprivileged user, reads the SQLite
// file read-only and mirrors the live session over that socket. Capture never waits on the web process, and the
// web process can die and come back without a gap in capture.
import { chmodSync, chownSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type pino from 'pino';
import { z } from 'zod';
import type { CollectorStatus } from '../../schema/status.ts';
import { CaptureUnavailableError, LiveSession } from '../../collector/live-session.ts';
import { Hub } from '../../collector/publish/hub.ts';
import { LinkServer } from '../../collector/service/link-server.ts';
import { createLogger } from '../../collector/service/log.ts';
import { ScenarioTerminals } from '../../collector/service/terminals.ts';
import { loadOrCreateToken, type AccessToken } from './token.ts';
import { webUser, type UnprivilegedUser } from './users.ts';
import { WebProcess } from './web-process.ts';

export const ServeOptionsSchema = z.object({
  host: z.string().min(1).default('127.0.0.1'),
  port: z.number().int().min(0).max(65535).default(3000),
  /** Live recording file; default a new file under ./recordings/ (or the temp dir when that is not writable). */
  db: z.string().min(1).optional(),
  /** Serve this recording read-only instead of capturing. */
  replay: z.string().min(1).optional(),
  /** POST critical/high incidents here as JSON (command line or config file only; never from a page). */
  webhook: z.url({ protocol: /^https?$/ }).optional(),
  /** Next dev server (hot reload) instead of the production build. */
  dev: z.boolean().default(false),
  /** Prometheus server the Fleet page queries (web/server/fleet.ts); no Fleet page without it. */
  prometheus: z.url({ protocol: /^https?$/ }).optional(),
  /** The `host` label in /metrics (default: the session's host name). */
  hostLabel: z.string().min(1).optional(),
  /** Trace mode for the live collector (passed through to LiveSession; default auto). */
  mode: z.enum(['tracepoint', 'kprobe', 'auto']).optional(),
  /** Share of one core the live collector's background pagemap sweep may use (CollectorConfig.verifyCpuShare). */
  verifyCpuShare: z.number().gt(0).max(1).optional(),
  /** Let the scenario page start the bundled reproducers (loopback clients only). */
  allowScenarios: z.boolean().default(false),
  /** More names clients may use in the Host header (DNS rebinding check). */
  allowedHosts: z.array(z.string().min(1)).default([]),
  /** Serve plain HTTP on a non-loopback address (the token then travels in clear text). */
  insecure: z.boolean().default(false),
  /** TLS certificate and key (PEM files): https instead of http. */
  tlsCert: z.string().min(1).optional(),
  tlsKey: z.string().min(1).optional(),
  /** Where the access token of a non-loopback bind is kept (default: the state directory's `token`). */
  tokenFile: z.string().min(1).optional(),
  /** The user the web process runs as when started as root (default: pinwatch, else nobody). */
  user: z.string().min(1).optional(),
});
export type ServeOptions = z.input<typeof ServeOptionsSchema>;

export type ServeStatus = CollectorStatus;

export interface ServeHandle {
  url: string;
  /** 'live' when the collector runs (or tried to), 'replay' for --replay. */
  mode: 'live' | 'replay';
  /** The SQLite file behind the main source. */
  db: string;
  /** The access token when the bind is not loopback (printed by the CLI only when `created`). */
  access: AccessToken | null;
  /** Who the web process runs as (null: same user as this process). */
  webUser: UnprivilegedUser | null;
  /** Lines for the start-up banner (token, plain HTTP, who runs what). */
  notes: string[];
  status(): ServeStatus;
  /** pid of the web process (null while it is restarting). */
  webPid(): number | null;
  close(): Promise<void>;
}

/** A bind pinwatch refuses (plain HTTP on a network address without --insecure). */
export class BindRefusedError extends Error {
  constructor(
    message: string,
    readonly fix: string,
  ) {
    super(message);
    this.name = 'BindRefusedError';
  }
}

/** Loopback names and addresses: the only binds that need no token. */
function isLoopbackBind(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  return h === 'localhost' || h === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h);
}

function defaultDbFile(): string {
  const stamp = new Date().toISOString().replace(/[-:]/g, '').replace(/\..*/, '').replace('T', '-');
  const dir = resolve('recordings');
  try {
    mkdirSync(dir, { recursive: true });
    return join(dir, `pinwatch-${stamp}.db`);
  } catch {
    return join(tmpdir(), `pinwatch-${stamp}-${process.pid}.db`);
  }
}

/** A directory for the link socket only root and the web user's group can enter. */
function runtimeDir(user: UnprivilegedUser | null): string {
  const base = process.env.RUNTIME_DIRECTORY?.split(':')[0] ?? (process.getuid?.() === 0 ? '/run/pinwatch' : join(tmpdir(), `pinwatch-${process.getuid?.() ?? 'u'}`));
  mkdirSync(base, { recursive: true, mode: 0o750 });
  if (user) chownSync(base, 0, user.gid);
  chmodSync(base, user ? 0o750 : 0o700);
  return base;
}

/** The recording readable by the web user's group only (SQLite gives -wal/-shm the same owner and mode). */
function shareDb(file: string, user: UnprivilegedUser | null): void {
  for (const f of [file, `${file}-wal`, `${file}-shm`]) {
    if (!existsSync(f)) continue;
    if (user) chownSync(f, 0, user.gid);
    chmodSync(f, 0o640);
  }
}

const REPLAY_HINT = 'or open a recording: pinwatch serve --replay web/recordings/scenarios-6.18.db';

async function startLive(live: LiveSession, hub: Hub, dbFile: string, log: pino.Logger): Promise<boolean> {
  hub.setStatus({ level: 'warning', message: 'starting live capture: compiling and attaching bpftrace probes' });
  try {
    const session = await live.start();
    const attached = session.probes.filter((p) => p.attached).length;
    const current = hub.status();
    if (!current || current.message.startsWith('starting live capture')) {
      hub.setStatus({ level: 'ok', message: `capturing in ${session.mode} mode: ${attached} of ${session.probes.length} scripts attached; recording to ${dbFile}` });
    }
    log.info({ db: dbFile, mode: session.mode, attached }, 'live capture started');
    return true;
  } catch (err) {
    if (err instanceof CaptureUnavailableError) {
      hub.setStatus({ level: 'error', message: `Live capture unavailable: ${err.reason}`, fix: `${err.fix}; ${REPLAY_HINT}` });
      log.warn({ reason: err.reason, fix: err.fix }, 'live capture unavailable; serving the dashboard without it');
    } else {
      const fix = (err as { fix?: unknown }).fix;
      hub.setStatus({ level: 'error', message: `Live capture failed: ${(err as Error).message}`, fix: typeof fix === 'string' ? `${fix}; ${REPLAY_HINT}` : REPLAY_HINT });
      log.error({ err: (err as Error).stack }, 'live capture failed');
    }
    return false;
  }
}

export async function serve(input: ServeOptions = {}, logger?: pino.Logger): Promise<ServeHandle> {
  const opts = ServeOptionsSchema.parse(input);
  const log = logger ?? createLogger('pinwatch-serve');

  // Everything that can refuse the start, before anything runs.
  const nonLoopback = !isLoopbackBind(opts.host);
  const tls = opts.tlsCert && opts.tlsKey ? { cert: readFileSync(opts.tlsCert, 'utf8'), key: readFileSync(opts.tlsKey, 'utf8') } : null;
  if (nonLoopback && !tls && !opts.insecure) {
    throw new BindRefusedError(
      `refusing to serve plain HTTP on ${opts.host}: the access token and every page would cross the network in clear text`,
      'give --tls-cert FILE --tls-key FILE, or --insecure to accept plain HTTP, or keep 127.0.0.1 and use an SSH tunnel',
    );
  }
  const access = nonLoopback ? loadOrCreateToken(opts.tokenFile) : null;
  const user = webUser(opts.user);
  const dbFile = opts.replay ? resolve(opts.replay) : resolve(opts.db ?? defaultDbFile());

  const notes: string[] = [];
  if (access) {
    notes.push(`bound to ${opts.host}, not loopback: every client needs the access token (kept in ${access.file})`);
    if (access.created) notes.push(`access token (shown only this once): ${access.token} — open /login?token=${access.token} once per browser, or send "Authorization: Bearer <token>"`);
  }
  if (nonLoopback && !tls) notes.push('--insecure: plain HTTP on a network address; the token and every page cross the network unencrypted');
  if (user) notes.push(`web server runs as ${user.name} (uid ${user.uid}); capture stays in this process`);
  if (opts.allowScenarios) notes.push('--allow-scenarios: loopback clients may run the bundled reproducers (as root) from the scenario page');

  const hub = new Hub();
  const terminals = new ScenarioTerminals();
  let live: LiveSession | null = null;
  let capturing = false;
  let link: LinkServer | null = null;
  if (!opts.replay) {
    live = new LiveSession({
      db: dbFile,
      hub,
      logger: log.child({ part: 'collector' }),
      ...(opts.mode ? { mode: opts.mode } : {}),
      ...(opts.verifyCpuShare !== undefined ? { config: { verifyCpuShare: opts.verifyCpuShare } } : {}),
    });
    link = await LinkServer.listen({
      path: join(runtimeDir(user), `collector-${process.pid}.sock`),
      hub,
      gid: user?.gid ?? null,
      terminals,
      capturing: () => capturing,
      canRunScenarios: () => {
        if (!opts.allowScenarios) return 'running scenarios from the page is off: start the server with `pinwatch serve --allow-scenarios`';
        if (!capturing) return 'live capture is not running; a scenario would run unobserved';
        return null;
      },
      log,
    });
  }
  const web = new WebProcess(
    {
      host: opts.host,
      port: opts.port,
      dev: opts.dev,
      mode: opts.replay ? 'replay' : 'live',
      db: dbFile,
      link: link?.path ?? null,
      webhook: opts.webhook ?? null,
      prometheus: opts.prometheus ?? null,
      hostLabel: opts.hostLabel ?? null,
      allowScenarios: opts.allowScenarios,
      allowedHosts: opts.allowedHosts,
      tls,
      token: access?.token ?? null,
      user,
    },
    { log, onGaveUp: (why) => hub.setStatus({ level: 'error', message: why, fix: 'see the log; restart pinwatch serve' }) },
  );

  const capture = live
    ? startLive(live, hub, dbFile, log).then((ok) => {
        capturing = ok;
        if (ok) shareDb(dbFile, user);
        hub.setStatus({ ...hub.status()! }); // tell the web process whether scenarios may run now
      })
    : Promise.resolve();
  capture.then(() => web.dbReady(), () => web.dbReady());
  if (opts.replay) web.dbReady();
  const [started, captured] = await Promise.allSettled([web.start(), capture]);
  if (started.status === 'rejected' || captured.status === 'rejected') {
    await web.stop();
    await link?.close();
    await live?.stop().catch(() => undefined);
    throw started.status === 'rejected' ? started.reason : (captured as PromiseRejectedResult).reason;
  }
  log.info({ url: started.value, mode: opts.replay ? 'replay' : 'live', db: dbFile, webUser: user?.name ?? null }, 'pinwatch serve started');

  let closing: Promise<void> | null = null;
  return {
    url: started.value,
    mode: opts.replay ? 'replay' : 'live',
    db: dbFile,
    access,
    webUser: user,
    notes,
    webPid: () => web.pid(),
    status: () => {
      if (!opts.replay) return hub.status() ?? { level: 'warning', message: 'live capture not started' };
      return { level: 'ok', message: `replay of ${dbFile}` };
    },
    close() {
      closing ??= (async () => {
        await web.stop();
        terminals.closeAll();
        await link?.close();
        await live?.stop().catch((err: Error) => log.error({ err: err.stack }, 'stopping live capture failed'));
        log.flush();
      })();
      return closing;
    },
  };
}
