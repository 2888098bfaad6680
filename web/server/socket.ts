// socket.io: pushes a source's session, status, pins, rates and anomalies to browsers (schema/protocol.ts),
// plus the host clock and the scenario terminals (web/shared/wire.ts). A client names its source in the
// handshake query (?src=); after 'resume'(afterSeq) it gets every anomaly with seq > afterSeq, then live ones,
// each exactly once (a per-socket cursor), so a reconnecting client misses nothing and sees no duplicates.
// A resume is answered in pages (SQLite for what memory no longer holds), each page only once the client has
// taken the previous one, and resumes are rate-limited per socket: a client that asks for everything again and
// again, or never reads, costs its own socket and nothing else.
import type { Server as HttpServer } from 'node:http';
import { Server, type Socket } from 'socket.io';
import type { Anomaly } from '../../schema/anomalies.ts';
import type { Incident } from '../../schema/incidents.ts';
import type { PinSummary } from '../../schema/pins.ts';
import type { EventRates } from '../../schema/protocol.ts';
import type { SessionInfo } from '../../schema/session.ts';
import type { CollectorStatus, WebClientToServer, WebServerToClient } from '../shared/wire.ts';
import { isLoopbackAddress, PerClientLimit, type RequestGuard } from './guard.ts';
import type { TermExit, TermStartReply, TermStartRequest } from '../../schema/link.ts';
import type { DataSource, SourceRegistry } from './sources.ts';

type WebSocket = Socket<WebClientToServer, WebServerToClient>;

interface ClientState {
  socket: WebSocket;
  /** Highest anomaly seq sent; undefined until the client has sent 'resume' and its backlog is sent. */
  cursor: number | undefined;
  /** A resume to start from (set by 'resume' or a link resync; the pump picks it up). */
  resumeFrom: number | null;
  pumping: boolean;
  /** Token bucket for 'resume'. */
  tokens: number;
  tokensAtMs: number;
}

/** Anomalies per resume page. */
export const RESUME_PAGE = 250;
/**
 * Anomalies per second all resumes together may send (pages are granted in turn, first come first served):
 * a reload of 20,000 takes ~5 s, and a flood of sockets asking for everything takes the same share of this
 * process, not all of it, so pages and /metrics keep answering.
 */
export const RESUME_RATE = 4000;
/** 'resume' budget per socket: a burst of 3, then one every 5 s (a page sends one per connect). */
const RESUME_BURST = 3;
const RESUME_REFILL_MS = 5000;
/** A client whose socket does not take a page within this long is disconnected. */
const SLOW_CLIENT_MS = 30_000;
/** Packets queued for one client beyond which live messages disconnect it (it does not read). */
const MAX_CLIENT_BACKLOG = 2000;

interface EngineConn {
  writeBuffer: unknown[];
  transport: { writable: boolean; once(e: 'drain', fn: () => void): void; off(e: 'drain', fn: () => void): void };
  readyState: string;
}

function connOf(socket: WebSocket): EngineConn {
  return socket.conn as unknown as EngineConn;
}

/** Resolves once everything sent to the client has left this process (or rejects after SLOW_CLIENT_MS). */
async function drained(socket: WebSocket): Promise<void> {
  const conn = connOf(socket);
  const deadline = Date.now() + SLOW_CLIENT_MS;
  for (;;) {
    if (!socket.connected) throw new Error('disconnected');
    if (conn.writeBuffer.length === 0 && conn.transport.writable) break;
    if (Date.now() > deadline) throw new Error('slow client');
    // The transport says 'drain' when its last send left this process; the timer covers a transport upgrade.
    const transport = conn.transport;
    await new Promise<void>((r) => {
      const done = () => {
        clearTimeout(t);
        transport.off('drain', done);
        r();
      };
      const t = setTimeout(done, 100);
      transport.once('drain', done);
    });
  }
  await new Promise((r) => setImmediate(r));
}

/** Grants resume pages in arrival order at RESUME_RATE anomalies a second, for every socket together. */
export class ResumeScheduler {
  private tokens: number;
  private at = performance.now();
  private readonly queue: (() => void)[] = [];
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly rate = RESUME_RATE,
    private readonly page = RESUME_PAGE,
  ) {
    this.tokens = page;
  }

  /** Resolves when a page of up to `page` anomalies may be sent. */
  turn(): Promise<void> {
    return new Promise((resolve) => {
      this.queue.push(resolve);
      this.run();
    });
  }

  private run(): void {
    const now = performance.now();
    this.tokens = Math.min(this.page * 2, this.tokens + ((now - this.at) * this.rate) / 1000);
    this.at = now;
    while (this.queue.length && this.tokens >= this.page) {
      this.tokens -= this.page;
      this.queue.shift()!();
    }
    if (this.queue.length && this.timer === null) {
      const wait = Math.max(5, ((this.page - this.tokens) * 1000) / this.rate);
      this.timer = setTimeout(() => {
        this.timer = null;
        this.run();
      }, wait);
    }
  }
}

function takeResumeToken(c: ClientState, now = Date.now()): boolean {
  c.tokens = Math.min(RESUME_BURST, c.tokens + (now - c.tokensAtMs) / RESUME_REFILL_MS);
  c.tokensAtMs = now;
  if (c.tokens < 1) return false;
  c.tokens -= 1;
  return true;
}

const CLOCK_INTERVAL_MS = 1000;

/** Fans one source's events out to the sockets watching it. */
class SourceChannel {
  readonly clients = new Set<ClientState>();
  private readonly source: DataSource;
  private readonly clock: NodeJS.Timeout | null;
  private readonly listeners: [string, (...args: never[]) => void][];

  private readonly scheduler: ResumeScheduler;

  constructor(source: DataSource, scheduler: ResumeScheduler) {
    this.source = source;
    this.scheduler = scheduler;
    const onAnomaly = (a: Anomaly) => {
      for (const c of this.clients) {
        if (c.cursor !== undefined && a.seq > c.cursor) {
          if (connOf(c.socket).writeBuffer.length > MAX_CLIENT_BACKLOG) {
            c.socket.disconnect(true); // not reading; it resumes from its last seq when it comes back
            continue;
          }
          c.cursor = a.seq;
          c.socket.emit('anomaly', a);
        }
      }
    };
    // Incidents follow their anomalies: a client gets them once it has resumed.
    const onIncident = (i: Incident) => {
      for (const c of this.clients) if (c.cursor !== undefined) c.socket.emit('incident', i);
    };
    // The collector link came back: every client catches up from its cursor (anomalies of the gap are in SQLite).
    const onResync = () => {
      for (const c of this.clients) {
        if (c.cursor === undefined) continue;
        c.resumeFrom = c.cursor;
        c.cursor = undefined;
        void this.pump(c);
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
      ['incident', onIncident],
      ['pins', onPins],
      ['rates', onRates],
      ['session', onSession],
      ['status', onStatus],
      ['resync', onResync],
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
    // One message, not one per second of history: 60 sockets connecting at once cost 60 messages, not 36,000.
    c.socket.emit('ratesHistory', s.rates());
  }

  resume(c: ClientState, afterSeq: unknown): void {
    if (!takeResumeToken(c)) {
      c.socket.emit('status', { level: 'warning', message: 'resume refused: too many resume requests on this connection', fix: 'reload the page' });
      return;
    }
    const after = typeof afterSeq === 'number' && Number.isFinite(afterSeq) ? Math.max(0, Math.floor(afterSeq)) : 0;
    // A second resume on the same socket restarts from what that client says it has.
    c.resumeFrom = after;
    c.cursor = undefined;
    void this.pump(c);
  }

  /** Sends the backlog page by page, each once the client took the previous; then switches it to live. */
  private async pump(c: ClientState): Promise<void> {
    if (c.pumping) return;
    c.pumping = true;
    let cursor = 0;
    try {
      for (;;) {
        if (c.resumeFrom !== null) {
          cursor = c.resumeFrom;
          c.resumeFrom = null;
        }
        if (!c.socket.connected) return;
        await this.scheduler.turn();
        if (c.resumeFrom !== null) continue;
        if (!c.socket.connected) return;
        const page = this.source.anomalyPage(cursor, RESUME_PAGE);
        if (page.length === 0) {
          // Synchronously after the last read: every later anomaly reaches this client live; incidents follow
          // their anomalies, so the client gets them now (their latest state) and then live.
          c.cursor = cursor;
          for (const i of this.source.incidents()) c.socket.emit('incident', i);
          return;
        }
        const fresh = page.filter((a) => a.seq > cursor);
        if (fresh.length) {
          cursor = fresh[fresh.length - 1]!.seq;
          c.socket.emit('anomalies', fresh);
        }
        await drained(c.socket);
      }
    } catch {
      c.socket.disconnect(true);
    } finally {
      c.pumping = false;
    }
  }

  close(): void {
    if (this.clock) clearInterval(this.clock);
    for (const [name, fn] of this.listeners) this.source.off(name, fn as (...args: unknown[]) => void);
    this.clients.clear();
  }
}

/** The scenario terminals as the web sees them: run by the collector, reached over the collector link. */
export interface RemoteTerminals {
  startTerm(owner: string, req: TermStartRequest): Promise<TermStartReply>;
  resizeTerm(owner: string, runId: string, cols: number, rows: number): void;
  stopTerm(owner: string, runId: string): void;
  stopOwner(owner: string): void;
  on(event: 'term:data', fn: (owner: string, runId: string, data: string) => void): unknown;
  on(event: 'term:exit', fn: (owner: string, e: TermExit) => void): unknown;
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

export function attachSocket(http: HttpServer, sources: SourceRegistry, terminals: RemoteTerminals | null, opts: SocketOptions): SocketLayer {
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
  terminals?.on('term:data', (owner, runId, data) => io.sockets.sockets.get(owner)?.emit('term:data', runId, data));
  terminals?.on('term:exit', (owner, e) => io.sockets.sockets.get(owner)?.emit('term:exit', e));
  const scheduler = new ResumeScheduler();
  const channels = new Map<DataSource, SourceChannel>();
  const channelFor = (source: DataSource): SourceChannel => {
    let ch = channels.get(source);
    if (!ch) {
      ch = new SourceChannel(source, scheduler);
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
    const client: ClientState = { socket, cursor: undefined, resumeFrom: null, pumping: false, tokens: RESUME_BURST, tokensAtMs: Date.now() };
    ch.clients.add(client);
    ch.welcome(client);

    socket.on('resume', (afterSeq) => ch.resume(client, afterSeq));

    socket.on('term:start', (req, reply) => {
      if (typeof reply !== 'function') return;
      const refused = !isLoopbackAddress(socket.handshake.address)
        ? 'scenarios can only be started from the machine pinwatch runs on (a loopback client)'
        : source.info().kind === 'replay' || !terminals
          ? 'this page shows a replayed recording: scenarios run only on the live server'
          : opts.canRunScenarios();
      if (refused) {
        reply({ ok: false, error: refused });
        return;
      }
      const r = (req ?? {}) as Partial<TermStartRequest>;
      terminals!.startTerm(socket.id, { name: r.name as string, cols: r.cols as number, rows: r.rows as number }).then(reply);
    });
    socket.on('term:resize', (runId, cols, rows) => terminals?.resizeTerm(socket.id, String(runId), Number(cols), Number(rows)));
    socket.on('term:stop', (runId) => terminals?.stopTerm(socket.id, String(runId)));

    socket.on('disconnect', () => {
      ch.clients.delete(client);
      terminals?.stopOwner(socket.id);
    });
  });

  return {
    io,
    async close() {
      for (const ch of channels.values()) ch.close();
      channels.clear();
      // Closing the transports (not a server-side disconnect) makes the pages reconnect when a server is back.
      // io.close() would also close the http server; serve() closes that itself.
      await new Promise<void>((resolve) => {
        io.engine.close();
        resolve();
      });
    },
  };
}
