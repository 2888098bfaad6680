// socket.io: pushes a source's session, status, pins, rates and anomalies to browsers (schema/protocol.ts),
// plus the host clock and the scenario terminals (web/shared/wire.ts). A client names its source in the
// handshake query (?src=); after 'resume'(afterSeq) it gets every anomaly with seq > afterSeq, then live ones,
// each exactly once (a per-socket cursor), so a reconnecting client misses nothing and sees no duplicates.
import type { Server as HttpServer } from 'node:http';
import { Server, type Socket } from 'socket.io';
import type { Anomaly } from '../../schema/anomalies.ts';
import type { PinSummary } from '../../schema/pins.ts';
import type { EventRates } from '../../schema/protocol.ts';
import type { SessionInfo } from '../../schema/session.ts';
import type { CollectorStatus, WebClientToServer, WebServerToClient } from '../shared/wire.ts';
import { isLoopbackAddress, PerClientLimit, type RequestGuard } from './guard.ts';
import type { ScenarioTerminals } from './scenarios.ts';
import type { DataSource, SourceRegistry } from './sources.ts';

type WebSocket = Socket<WebClientToServer, WebServerToClient>;

interface ClientState {
  socket: WebSocket;
  /** Highest anomaly seq sent; undefined until the client has sent 'resume'. */
  cursor: number | undefined;
}

const CLOCK_INTERVAL_MS = 1000;

/** Fans one source's events out to the sockets watching it. */
class SourceChannel {
  readonly clients = new Set<ClientState>();
  private readonly source: DataSource;
  private readonly clock: NodeJS.Timeout | null;
  private readonly listeners: [string, (...args: never[]) => void][];

  constructor(source: DataSource) {
    this.source = source;
    const onAnomaly = (a: Anomaly) => {
      for (const c of this.clients) {
        if (c.cursor !== undefined && a.seq > c.cursor) {
          c.cursor = a.seq;
          c.socket.emit('anomaly', a);
        }
      }
    };
    const onPins = (p: PinSummary[]) => this.broadcast('pins', p);
    const onRates = (r: EventRates) => this.broadcast('rates', r);
    const onSession = (s: SessionInfo) => {
      this.broadcast('session', s);
      this.broadcast('source', this.source.info());
    };
    const onStatus = (s: CollectorStatus) => this.broadcast('status', s);
    this.listeners = [
      ['anomaly', onAnomaly],
      ['pins', onPins],
      ['rates', onRates],
      ['session', onSession],
      ['status', onStatus],
    ];
    for (const [name, fn] of this.listeners) source.on(name, fn as (...args: unknown[]) => void);
    this.clock =
      source.info().kind === 'live'
        ? setInterval(() => {
            if (this.clients.size) this.broadcast('clock', this.source.now());
          }, CLOCK_INTERVAL_MS)
        : null;
    this.clock?.unref();
  }

  private broadcast<E extends 'pins' | 'rates' | 'session' | 'status' | 'clock' | 'source'>(
    event: E,
    ...args: Parameters<WebServerToClient[E]>
  ): void {
    for (const c of this.clients) (c.socket.emit as (e: string, ...a: unknown[]) => void)(event, ...args);
  }

  welcome(c: ClientState): void {
    const s = this.source;
    c.socket.emit('source', s.info());
    c.socket.emit('status', s.status());
    const session = s.session();
    if (session) c.socket.emit('session', session);
    c.socket.emit('clock', s.now());
    c.socket.emit('pins', s.pins());
    for (const r of s.rates()) c.socket.emit('rates', r);
  }

  resume(c: ClientState, afterSeq: unknown): void {
    const after = typeof afterSeq === 'number' && Number.isFinite(afterSeq) ? afterSeq : 0;
    // A second resume on the same socket restarts from what that client says it has.
    let cursor = after;
    for (const a of this.source.anomaliesAfter(after)) {
      if (a.seq <= cursor) continue;
      cursor = a.seq;
      c.socket.emit('anomaly', a);
    }
    c.cursor = cursor;
  }

  close(): void {
    if (this.clock) clearInterval(this.clock);
    for (const [name, fn] of this.listeners) this.source.off(name, fn as (...args: unknown[]) => void);
    this.clients.clear();
  }
}

export interface SocketLayer {
  io: Server<WebClientToServer, WebServerToClient>;
  close(): Promise<void>;
}

export interface SocketOptions {
  guard: RequestGuard;
  /** Why a scenario cannot be started right now (capture down, not allowed), or null. */
  canRunScenarios: () => string | null;
  /** Open socket.io connections per client address (default 16: a page needs one). */
  maxPerClient?: number;
}

/** Largest message a browser may send (resume, term:* requests are a few bytes). */
export const MAX_CLIENT_MESSAGE_BYTES = 16 * 1024;

export function attachSocket(http: HttpServer, sources: SourceRegistry, terminals: ScenarioTerminals, opts: SocketOptions): SocketLayer {
  const { guard } = opts;
  const perClient = new PerClientLimit(opts.maxPerClient ?? 16);
  const io = new Server<WebClientToServer, WebServerToClient>(http, {
    serveClient: false,
    // Next's dev server has its own websocket (HMR) on this http server: leave other upgrades alone.
    destroyUpgrade: false,
    // The handshake passes the same checks as a page request (Host, Origin, token) and the per-client cap.
    allowRequest: (req, cb) => {
      const refused = guard.check(req, '/socket.io/');
      if (refused) return cb(refused.reason, false);
      if (perClient.count(req.socket.remoteAddress ?? '') >= perClient.max) return cb('too many connections from this address', false);
      cb(null, true);
    },
    maxHttpBufferSize: MAX_CLIENT_MESSAGE_BYTES,
    connectTimeout: 10_000,
  });
  io.engine.on('initial_headers', (headers: Record<string, string>) => guard.addTo(headers));
  io.engine.on('headers', (headers: Record<string, string>) => guard.addTo(headers));
  io.engine.on('connection', (conn: { request: { socket: { remoteAddress?: string } }; once(e: 'close', fn: () => void): void; close(): void }) => {
    const addr = conn.request.socket.remoteAddress ?? '';
    if (!perClient.tryAcquire(addr)) {
      conn.close();
      return;
    }
    conn.once('close', () => perClient.release(addr));
  });
  const channels = new Map<DataSource, SourceChannel>();
  const channelFor = (source: DataSource): SourceChannel => {
    let ch = channels.get(source);
    if (!ch) {
      ch = new SourceChannel(source);
      channels.set(source, ch);
    }
    return ch;
  };

  io.on('connection', (socket) => {
    const srcId = typeof socket.handshake.query.src === 'string' ? socket.handshake.query.src : 'main';
    const source = sources.get(srcId);
    if (!source) {
      socket.emit('status', { level: 'error', message: `no data source "${srcId}" on this server (recordings opened in the browser close when the server restarts)`, fix: 'open the overview without ?src=' });
      socket.disconnect(true);
      return;
    }
    const ch = channelFor(source);
    const client: ClientState = { socket, cursor: undefined };
    ch.clients.add(client);
    ch.welcome(client);

    socket.on('resume', (afterSeq) => ch.resume(client, afterSeq));

    const sink = {
      data: (runId: string, data: string) => socket.emit('term:data', runId, data),
      exit: (e: Parameters<WebServerToClient['term:exit']>[0]) => socket.emit('term:exit', e),
    };
    socket.on('term:start', (req, reply) => {
      if (typeof reply !== 'function') return;
      const refused =
        source.info().kind === 'replay'
          ? 'this page shows a replayed recording: scenarios run only on the live server'
          : !isLoopbackAddress(socket.handshake.address)
            ? 'scenarios can only be started from the machine pinwatch runs on (a loopback client)'
            : opts.canRunScenarios();
      if (refused) {
        reply({ ok: false, error: refused });
        return;
      }
      const r = (req ?? {}) as Partial<Parameters<WebClientToServer['term:start']>[0]>;
      terminals.start(socket.id, sink, r.name, r.cols, r.rows).then(reply, (err: Error) => reply({ ok: false, error: err.message }));
    });
    socket.on('term:resize', (runId, cols, rows) => terminals.resize(socket.id, runId, cols, rows));
    socket.on('term:stop', (runId) => terminals.stop(socket.id, runId));

    socket.on('disconnect', () => {
      ch.clients.delete(client);
      terminals.stopOwner(socket.id);
    });
  });

  return {
    io,
    async close() {
      for (const ch of channels.values()) ch.close();
      channels.clear();
      io.disconnectSockets(true);
      // io.close() would also close the http server; serve() closes that itself.
      await new Promise<void>((resolve) => {
        io.engine.close();
        resolve();
      });
    },
  };
}
