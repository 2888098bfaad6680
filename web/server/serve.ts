// `pinwatch serve`: one Node http server with the Next.js dashboard (custom server), socket.io, the JSON API,
// /metrics and the scenario terminals. Live mode starts the collector (collector/live-session.ts) into a SQLite
// file and publishes through its Hub; --replay opens a recording read-only instead. When live capture is
// impossible (not root, no bpftrace, no tracefs) the server still starts and the pages say why and how to fix it.
import { mkdirSync } from 'node:fs';
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import next from 'next';
import pino from 'pino';
import { z } from 'zod';
import { CaptureUnavailableError, LiveSession } from '../../collector/live-session.ts';
import { Hub } from '../../collector/publish/hub.ts';
import type { Anomaly } from '../../schema/anomalies.ts';
import type { CollectorStatus } from '../shared/wire.ts';
import { loadOrCreateToken } from '../../collector/service/token.ts';
import { createApi } from './api.ts';
import { NEXT_ENV, REPO_ROOT, WEB_DIR, ensureWebBuild } from './build.ts';
import { isLoopbackAddress, RequestGuard } from './guard.ts';
import { DashboardMetrics } from './metrics.ts';
import { ScenarioTerminals } from './scenarios.ts';
import { attachSocket } from './socket.ts';
import { LiveSource, ReplaySource, SourceRegistry, type DataSource } from './sources.ts';
import { WebhookSender } from './webhook.ts';

export const ServeOptionsSchema = z.object({
  host: z.string().min(1).default('127.0.0.1'),
  port: z.number().int().min(0).max(65535).default(3000),
  /** Live recording file; default a new file under ./recordings/ (or the temp dir when that is not writable). */
  db: z.string().min(1).optional(),
  /** Serve this recording read-only instead of capturing. */
  replay: z.string().min(1).optional(),
  /** POST critical/high anomalies here as JSON. */
  webhook: z.url({ protocol: /^https?$/ }).optional(),
  /** Next dev server (hot reload) instead of the production build. */
  dev: z.boolean().default(false),
  /** Trace mode for the live collector (passed through to LiveSession; default auto). */
  mode: z.enum(['tracepoint', 'kprobe', 'auto']).optional(),
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
});
export type ServeOptions = z.input<typeof ServeOptionsSchema>;

export interface ServeHandle {
  url: string;
  /** 'live' when the collector runs (or tried to), 'replay' for --replay. */
  mode: 'live' | 'replay';
  /** The SQLite file behind the main source. */
  db: string;
  status(): CollectorStatus;
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

const REPLAY_HINT = 'or open a recording: pinwatch serve --replay web/recordings/scenarios-6.18.db';

async function startLive(dbFile: string, mode: ServeOptions['mode'], log: pino.Logger): Promise<{ source: DataSource; live: LiveSession | null }> {
  const hub = new Hub();
  const source = new LiveSource('main', hub, dbFile);
  hub.setStatus({ level: 'warning', message: 'starting live capture: compiling and attaching bpftrace probes' });
  const live = new LiveSession({ db: dbFile, hub, logger: log.child({ part: 'collector' }), ...(mode ? { mode } : {}) });
  try {
    const session = await live.start();
    const attached = session.probes.filter((p) => p.attached).length;
    const current = hub.status();
    if (!current || current.message.startsWith('starting live capture')) {
      hub.setStatus({ level: 'ok', message: `capturing in ${session.mode} mode: ${attached} of ${session.probes.length} scripts attached; recording to ${dbFile}` });
    }
    log.info({ db: dbFile, mode: session.mode, attached }, 'live capture started');
    return { source, live };
  } catch (err) {
    if (err instanceof CaptureUnavailableError) {
      hub.setStatus({ level: 'error', message: `Live capture unavailable: ${err.reason}`, fix: `${err.fix}; ${REPLAY_HINT}` });
      log.warn({ reason: err.reason, fix: err.fix }, 'live capture unavailable; serving the dashboard without it');
    } else {
      const fix = (err as { fix?: unknown }).fix;
      hub.setStatus({ level: 'error', message: `Live capture failed: ${(err as Error).message}`, fix: typeof fix === 'string' ? `${fix}; ${REPLAY_HINT}` : REPLAY_HINT });
      log.error({ err: (err as Error).stack }, 'live capture failed');
    }
    // start() has already torn down what it started; stop() now would only overwrite the status above.
    return { source, live: null };
  }
}

export async function serve(input: ServeOptions = {}): Promise<ServeHandle> {
  const opts = ServeOptionsSchema.parse(input);
  const log = pino({ name: 'pinwatch-serve', level: process.env.PINWATCH_LOG_LEVEL ?? 'info' }, pino.destination(2));

  // The Next build (first start: about a minute on 2 cores) and bpftrace's compile/attach overlap.
  const buildP = opts.dev ? Promise.resolve({ built: false, ms: 0 }) : ensureWebBuild((m) => log.info(m));
  const dbFile = opts.replay ? resolve(opts.replay) : resolve(opts.db ?? defaultDbFile());
  let sourceP: Promise<{ source: DataSource; live: LiveSession | null }>;
  if (opts.replay) {
    sourceP = Promise.resolve({ source: new ReplaySource('main', dbFile), live: null });
  } else {
    sourceP = startLive(dbFile, opts.mode, log);
  }
  // Both must settle before anything is left running on failure.
  const [built, started] = await Promise.allSettled([buildP, sourceP]);
  if (built.status === 'rejected' || started.status === 'rejected') {
    if (started.status === 'fulfilled') {
      await started.value.live?.stop().catch(() => undefined);
      await started.value.source.close();
    }
    throw built.status === 'rejected' ? built.reason : (started as PromiseRejectedResult).reason;
  }
  const { source, live } = started.value;

  Object.assign(process.env, NEXT_ENV);
  const nextApp = next({ dev: opts.dev, dir: WEB_DIR, hostname: opts.host, port: opts.port, quiet: !opts.dev });
  await nextApp.prepare();
  const nextHandler = nextApp.getRequestHandler();

  const sources = new SourceRegistry();
  sources.setMain(source);
  const metrics = new DashboardMetrics(source);
  const terminals = new ScenarioTerminals();
  const recordingDirs = [join(WEB_DIR, 'recordings'), resolve('recordings'), dirname(dbFile)];
  const api = createApi({ sources, metrics, recordingDirs, log });

  let publicUrl = '';
  let webhook: WebhookSender | null = null;
  let onAnomalyForWebhook: ((a: Anomaly) => void) | null = null;
  if (opts.webhook && source.info().kind === 'live') {
    webhook = new WebhookSender({
      url: opts.webhook,
      session: () => source.session(),
      dashboardUrl: (a) => `${publicUrl}/anomalies/${a.seq}`,
      onOutcome: (ok, a, detail) => {
        metrics.webhookOutcome(ok);
        if (ok) log.debug({ seq: a.seq, detail }, 'webhook delivered');
        else log.warn({ seq: a.seq, rule: a.rule, detail }, 'webhook gave up');
      },
    });
    onAnomalyForWebhook = (a) => webhook!.enqueue(a);
    source.on('anomaly', onAnomalyForWebhook);
  }

  const nonLoopback = !isLoopbackAddress(opts.host);
  const tls = !!(opts.tlsCert && opts.tlsKey);
  if (nonLoopback && !tls && !opts.insecure) {
    throw new BindRefusedError(
      `refusing to serve plain HTTP on ${opts.host}: the access token and every page would cross the network in clear text`,
      'give --tls-cert FILE --tls-key FILE, or --insecure to accept plain HTTP, or bind 127.0.0.1 and use an SSH tunnel',
    );
  }
  const access = nonLoopback ? loadOrCreateToken(opts.tokenFile) : null;
  const guard = new RequestGuard({ bindHost: opts.host, port: opts.port, allowedHosts: opts.allowedHosts, token: access?.token ?? null, tls, dev: opts.dev });
  const handler = (req: IncomingMessage, res: ServerResponse) => {
    guard.apply(res);
    const url = new URL(req.url ?? '/', 'http://localhost');
    const refused = guard.check(req, url.pathname);
    if (refused) {
      res.writeHead(refused.status, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store' }).end(`${refused.reason}\n`);
      return;
    }
    if (url.pathname === '/login' && req.method === 'GET') return guard.login(req, res, url);
    api.handle(req, res).then(
      (done) => {
        if (!done) return nextHandler(req, res);
      },
      (err: Error) => {
        log.error({ err: err.stack }, 'request failed');
        if (!res.headersSent) res.writeHead(500).end();
      },
    );
  };
  const server = tls ? createHttpsServer({ cert: readFileSync(opts.tlsCert!), key: readFileSync(opts.tlsKey!) }, handler) : createServer(handler);
  const socket = attachSocket(server, sources, terminals, {
    guard,
    canRunScenarios: () => {
      if (!opts.allowScenarios) return 'running scenarios from the page is off: start the server with `pinwatch serve --allow-scenarios`';
      if (!live) return `live capture is not running (${source.status().message}); a scenario would run unobserved`;
      return null;
    },
  });
  if (opts.dev) {
    const upgrade = nextApp.getUpgradeHandler();
    server.on('upgrade', (req, sock, head) => {
      if (!req.url?.startsWith('/socket.io')) void upgrade(req, sock, head);
    });
  }

  await new Promise<void>((resolvePromise, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, () => {
      server.off('error', reject);
      resolvePromise();
    });
  });
  const addr = server.address() as AddressInfo;
  guard.setPort(addr.port);
  const hostForUrl = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  publicUrl = `${tls ? 'https' : 'http'}://${hostForUrl}:${addr.port}`;
  log.info({ url: publicUrl, mode: source.info().kind, db: dbFile, build: built.value }, 'dashboard listening');

  let closing: Promise<void> | null = null;
  return {
    url: publicUrl,
    mode: source.info().kind,
    db: dbFile,
    status: () => source.status(),
    close() {
      closing ??= (async () => {
        terminals.closeAll();
        webhook?.close();
        if (onAnomalyForWebhook) source.off('anomaly', onAnomalyForWebhook);
        await socket.close();
        server.closeAllConnections();
        await new Promise<void>((r) => server.close(() => r()));
        await live?.stop().catch((err: Error) => log.error({ err: err.stack }, 'stopping live capture failed'));
        metrics.close();
        api.close();
        await sources.closeAll();
        await nextApp.close().catch(() => undefined);
        log.flush();
      })();
      return closing;
    },
  };
}

export { REPO_ROOT };
