// The web process of `pinwatch serve` (started by cli/compose/serve.ts, entry web/server/main.ts): one
// Node http(s) server with the Next.js dashboard (custom server), socket.io, the JSON API and /metrics. It never
// captures anything itself: live data comes over the collector link (a Unix socket) and from a read-only view
// of the SQLite file the collector writes; --replay opens a recording instead. It starts as root only to build
// and bind, then drops to an unprivileged user before it talks to the collector or accepts a request.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import next from 'next';
import type pino from 'pino';
import type { Incident, IncidentChange } from '../../schema/incidents.ts';
import type { CollectorStatus } from '../shared/wire.ts';
import { AlertInbox } from './alerts.ts';
import { createApi } from './api.ts';
import { NEXT_ENV, WEB_DIR, ensureWebBuild } from './build.ts';
import { CollectorLink } from './collector-link.ts';
import { FleetClient } from './fleet.ts';
import { RequestGuard } from './guard.ts';
import { DashboardMetrics } from './metrics.ts';
import { attachSocket } from './socket.ts';
import { LiveSource, ReplaySource, SourceRegistry, type DataSource } from './sources.ts';
import { WebhookSender } from './webhook.ts';

/** What the capture process hands the web process (over the IPC channel, never argv or the environment). */
export interface WebConfig {
  host: string;
  port: number;
  dev: boolean;
  /** 'live': the collector link at `link`; 'replay': `db` read-only. */
  mode: 'live' | 'replay';
  db: string;
  link: string | null;
  webhook: string | null;
  /** Prometheus server the Fleet page queries; null: no Fleet page. */
  prometheus: string | null;
  /** The `host` label in /metrics (null: the session's host name). */
  hostLabel: string | null;
  allowScenarios: boolean;
  allowedHosts: string[];
  /** PEM contents (read by the collector process, which may read root-only files). */
  tls: { cert: string; key: string } | null;
  /** Required from every client when set (non-loopback binds). */
  token: string | null;
  /** Drop to this user once listening (null: stay, e.g. not started as root). */
  user: { uid: number; gid: number; name: string } | null;
}

export interface WebHandle {
  url: string;
  close(): Promise<void>;
  status(): CollectorStatus;
}

/** setgroups/setgid/setuid, checked: after this the process cannot regain root. */
export function dropPrivileges(user: { uid: number; gid: number }): void {
  process.setgroups?.([user.gid]);
  process.setgid?.(user.gid);
  process.setuid?.(user.uid);
  if (process.getuid?.() !== user.uid || process.geteuid?.() !== user.uid || process.getgid?.() !== user.gid) {
    throw new Error(`could not drop privileges to uid ${user.uid} gid ${user.gid}`);
  }
}

/**
 * `dbReady` resolves once the collector has created its SQLite file (or knows it will not): the file is opened
 * before root is dropped, so it may live in a directory only root can enter (the descriptors stay open).
 */
export async function startWeb(cfg: WebConfig, log: pino.Logger, dbReady: Promise<void> = Promise.resolve()): Promise<WebHandle> {
  if (!cfg.dev) await ensureWebBuild((m) => log.info(m));
  const link = cfg.mode === 'live' && cfg.link ? new CollectorLink(cfg.link) : null;
  const source: DataSource = link ? new LiveSource('main', link, cfg.db) : new ReplaySource('main', cfg.db);

  Object.assign(process.env, NEXT_ENV);
  const nextApp = next({ dev: cfg.dev, dir: WEB_DIR, hostname: cfg.host, port: cfg.port, quiet: !cfg.dev });
  await nextApp.prepare();
  const nextHandler = nextApp.getRequestHandler();
  await dbReady;
  if (source.reader() === null && cfg.mode === 'live') log.warn({ db: cfg.db }, 'no recording to read yet: pages show live data only');

  const sources = new SourceRegistry();
  sources.setMain(source);
  const metrics = new DashboardMetrics(source, cfg.hostLabel ? { hostLabel: cfg.hostLabel } : {});
  const recordingDirs = [join(WEB_DIR, 'recordings'), resolve('recordings'), dirname(cfg.db)];
  const api = createApi({ sources, metrics, recordingDirs, log, alerts: new AlertInbox(), fleet: cfg.prometheus ? new FleetClient(cfg.prometheus) : undefined });

  let publicUrl = '';
  let webhook: WebhookSender | null = null;
  let onIncidentForWebhook: ((i: Incident, change: IncidentChange) => void) | null = null;
  if (cfg.webhook && link) {
    webhook = new WebhookSender({
      url: cfg.webhook,
      session: () => source.session(),
      dashboardUrl: (i) => `${publicUrl}/anomalies/${i.anomalySeqs[0]}`,
      findings: (i) => i.anomalySeqs.flatMap((seq) => source.anomaly(seq) ?? []),
      onOutcome: (ok, i, detail) => {
        metrics.webhookOutcome(ok);
        if (ok) log.debug({ incident: i.id, detail }, 'webhook delivered');
        else log.warn({ incident: i.id, title: i.title, detail }, 'webhook gave up');
      },
    });
    onIncidentForWebhook = (i, change) => webhook!.update(i, change);
    source.on('incident', onIncidentForWebhook);
  }

  const guard = new RequestGuard({ bindHost: cfg.host, port: cfg.port, allowedHosts: cfg.allowedHosts, token: cfg.token, tls: !!cfg.tls, dev: cfg.dev });
  const handler = (req: IncomingMessage, res: ServerResponse) => {
    guard.apply(res, req);
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
  const server = cfg.tls ? createHttpsServer({ cert: cfg.tls.cert, key: cfg.tls.key }, handler) : createServer(handler);
  // Bounds on what one client can hold open (socket.io has its own per-address cap).
  server.maxConnections = 512;
  server.headersTimeout = 20_000;
  server.requestTimeout = 5 * 60_000; // uploads of large recordings
  const socket = attachSocket(server, sources, link, {
    guard,
    canRunScenarios: () => {
      if (!cfg.allowScenarios) return 'running scenarios from the page is off: start the server with `pinwatch serve --allow-scenarios`';
      if (!link?.capturing()) return `live capture is not running (${source.status().message}); a scenario would run unobserved`;
      return null;
    },
  });
  if (cfg.dev) {
    const upgrade = nextApp.getUpgradeHandler();
    server.on('upgrade', (req, sock, head) => {
      if (!req.url?.startsWith('/socket.io')) void upgrade(req, sock, head);
    });
  }

  await new Promise<void>((resolvePromise, reject) => {
    server.once('error', reject);
    server.listen(cfg.port, cfg.host, () => {
      server.off('error', reject);
      resolvePromise();
    });
  });
  const addr = server.address() as AddressInfo;
  guard.setPort(addr.port);
  const hostForUrl = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  publicUrl = `${cfg.tls ? 'https' : 'http'}://${hostForUrl}:${addr.port}`;

  // Still before the first request is read (that happens on a later turn of the event loop).
  if (cfg.user) {
    dropPrivileges(cfg.user);
    log.info({ user: cfg.user.name, uid: cfg.user.uid, gid: cfg.user.gid }, 'web server dropped root');
  }
  // Connected as the unprivileged user: the socket's 0660 root:<group> mode is what lets it in.
  if (link) await link.start();
  log.info({ url: publicUrl, mode: cfg.mode, db: cfg.db }, 'dashboard listening');

  let closing: Promise<void> | null = null;
  return {
    url: publicUrl,
    status: () => source.status(),
    close() {
      closing ??= (async () => {
        webhook?.close();
        if (onIncidentForWebhook) source.off('incident', onIncidentForWebhook);
        await socket.close();
        server.closeAllConnections();
        await new Promise<void>((r) => server.close(() => r()));
        link?.close();
        metrics.close();
        api.close();
        await sources.closeAll();
        await nextApp.close().catch(() => undefined);
      })();
      return closing;
    },
  };
}
