// The collector's end of the link to the web process (schema/link.ts): a Unix socket, mode 0660, owned by
// root and the web user's group, so only that group can read what the collector publishes. The collector only
// pushes: each peer has an output budget, and a peer that stops reading is disconnected (it reconnects and
// resyncs from the hello + SQLite) — a slow, hostile or numerous set of browsers can never make the collector
// wait or grow. Scenario terminals run here on the web's request, only when --allow-scenarios was given.
import { chmodSync, chownSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import type { VerifySweep } from '../../schema/metrics.ts';
import type { Anomaly } from '../../schema/anomalies.ts';
import type { Incident, IncidentChange } from '../../schema/incidents.ts';
import { LinkFramer, type CollectorMessage, type LinkStatus, type WebMessage } from '../../schema/link.ts';
import type { EventRates } from '../../schema/protocol.ts';
import type { SessionInfo } from '../../schema/session.ts';
import type { Hub } from '../publish/hub.ts';
import type { ScenarioTerminals, TerminalSink } from './terminals.ts';

/** Kept anomalies sent in a hello (older ones: the web reads SQLite). */
const HELLO_ANOMALIES = 2000;
/** Pins snapshots at most twice a second. */
const PINS_INTERVAL_MS = 500;
/** Bytes queued to one peer before it counts as not reading and is cut off. */
const MAX_PEER_BACKLOG = 32 * 1024 * 1024;

export interface LinkServerOptions {
  path: string;
  hub: Hub;
  /** Group allowed to connect (the web user's); null leaves the file's group alone (not root). */
  gid: number | null;
  terminals: ScenarioTerminals;
  /** Why a scenario may not start now, or null (checked here too: the collector is what runs them). */
  canRunScenarios: () => string | null;
  capturing: () => boolean;
  log: { warn(obj: unknown, msg?: string): void; info(obj: unknown, msg?: string): void };
  /** Bytes queued to one peer before it is cut off (default 32 MiB). */
  maxPeerBacklog?: number;
}

export class LinkServer {
  private readonly server: Server;
  private readonly peers = new Set<Socket>();
  private readonly opts: LinkServerOptions;
  private readonly hubListeners: [string, (...a: never[]) => void][];
  private readonly pinsTimer: NodeJS.Timeout;
  private pinsDirty = false;
  /** Peers cut off because they did not read (for the report and tests). */
  dropped = 0;

  private constructor(opts: LinkServerOptions, server: Server) {
    this.opts = opts;
    this.server = server;
    const { hub } = opts;
    const onAnomaly = (a: Anomaly) => this.broadcast({ t: 'anomaly', a });
    const onIncident = (i: Incident, change: IncidentChange) => this.broadcast({ t: 'incident', i, change });
    const onRates = (r: EventRates) => this.broadcast({ t: 'rates', r, totals: hub.totals(), capture: hub.captureState(), ...sweepOf(hub) });
    const onSession = (s: SessionInfo) => this.broadcast({ t: 'session', s });
    const onStatus = (s: LinkStatus) => this.broadcast({ t: 'status', s, capturing: opts.capturing() });
    const onPin = () => {
      this.pinsDirty = true;
    };
    this.hubListeners = [
      ['anomaly', onAnomaly],
      ['incident', onIncident],
      ['rates', onRates],
      ['session', onSession],
      ['status', onStatus],
      ['pin', onPin],
    ];
    for (const [name, fn] of this.hubListeners) hub.on(name, fn as (...a: unknown[]) => void);
    this.pinsTimer = setInterval(() => {
      if (!this.pinsDirty || this.peers.size === 0) return;
      this.pinsDirty = false;
      this.broadcast({ t: 'pins', pins: hub.pins() });
    }, PINS_INTERVAL_MS);
    this.pinsTimer.unref();
  }

  static async listen(opts: LinkServerOptions): Promise<LinkServer> {
    rmSync(opts.path, { force: true }); // a stale socket of a crashed run
    const server = createServer();
    const link = new LinkServer(opts, server);
    server.on('connection', (s) => link.accept(s));
    // Created 0600 (umask inside listen is racy to rely on), then opened to the group.
    const oldMask = process.umask(0o177);
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(opts.path, () => {
          server.off('error', reject);
          resolve();
        });
      });
    } finally {
      process.umask(oldMask);
    }
    if (opts.gid !== null) chownSync(opts.path, 0, opts.gid);
    chmodSync(opts.path, 0o660);
    return link;
  }

  private accept(sock: Socket): void {
    const { hub } = this.opts;
    this.peers.add(sock);
    sock.setEncoding('utf8');
    const framer = new LinkFramer<WebMessage>((m) => this.onWebMessage(sock, m));
    sock.on('data', (chunk: string) => {
      if (!framer.push(chunk)) sock.destroy();
    });
    sock.on('error', () => undefined);
    sock.on('close', () => this.peers.delete(sock));
    const recent = hub.anomaliesAfter(-Infinity);
    this.send(sock, {
      t: 'hello',
      session: hub.session(),
      status: hub.status(),
      pins: hub.pins(),
      rates: hub.rates(),
      totals: hub.totals(),
      anomalies: recent.length > HELLO_ANOMALIES ? recent.slice(recent.length - HELLO_ANOMALIES) : recent,
      capturing: this.opts.capturing(),
      incidents: hub.incidents(),
      capture: hub.captureState(),
      ...sweepOf(hub),
    });
  }

  private readonly termSink = (sock: Socket): TerminalSink => ({
    data: (owner, runId, data) => this.send(sock, { t: 'term:data', owner, runId, data }),
    exit: (owner, e) => this.send(sock, { t: 'term:exit', owner, e }),
  });

  private onWebMessage(sock: Socket, m: WebMessage): void {
    const { terminals } = this.opts;
    if (!m || typeof m !== 'object') return;
    switch (m.t) {
      case 'term:start': {
        const refused = this.opts.canRunScenarios();
        if (refused) {
          this.send(sock, { t: 'reply', id: m.id, reply: { ok: false, error: refused } });
          return;
        }
        const req = (m.req ?? {}) as Partial<typeof m.req>;
        terminals.start(String(m.owner), this.termSink(sock), req.name, req.cols, req.rows).then(
          (reply) => this.send(sock, { t: 'reply', id: m.id, reply }),
          (err: Error) => this.send(sock, { t: 'reply', id: m.id, reply: { ok: false, error: err.message } }),
        );
        return;
      }
      case 'term:resize':
        terminals.resize(String(m.owner), m.runId, m.cols, m.rows);
        return;
      case 'term:stop':
        terminals.stop(String(m.owner), m.runId);
        return;
      case 'term:stopOwner':
        terminals.stopOwner(String(m.owner));
        return;
    }
  }

  private send(sock: Socket, m: CollectorMessage): void {
    this.writeLine(sock, `${JSON.stringify(m)}\n`);
  }

  private broadcast(m: CollectorMessage): void {
    if (this.peers.size === 0) return;
    const line = `${JSON.stringify(m)}\n`;
    for (const sock of this.peers) this.writeLine(sock, line);
  }

  /** Never blocks and never queues without bound: a peer that does not read is cut off. */
  private writeLine(sock: Socket, line: string): void {
    if (sock.destroyed) return;
    if (sock.writableLength > (this.opts.maxPeerBacklog ?? MAX_PEER_BACKLOG)) {
      this.dropped++;
      this.opts.log.warn({ backlog: sock.writableLength }, 'web process does not read the collector link: disconnected (it resyncs on reconnect)');
      sock.destroy();
      return;
    }
    sock.write(line);
  }

  get path(): string {
    return this.opts.path;
  }

  peerCount(): number {
    return this.peers.size;
  }

  async close(): Promise<void> {
    clearInterval(this.pinsTimer);
    for (const [name, fn] of this.hubListeners) this.opts.hub.off(name, fn as (...a: unknown[]) => void);
    for (const s of this.peers) s.destroy();
    this.peers.clear();
    await new Promise<void>((r) => this.server.close(() => r()));
    rmSync(this.opts.path, { force: true });
  }
}

/** The sweep figures for a message, when there are any. */
function sweepOf(hub: Hub): { sweep?: VerifySweep } {
  const s = hub.verifySweepState();
  return s ? { sweep: s } : {};
}
