// The web process's end of the collector link (schema/link.ts): a mirror of what the collector publishes —
// session, status, pins, rates, totals and the newest anomalies — kept here so browsers are served from this
// process's memory (and SQLite), never from the collector's. Reconnects by itself; after each hello it emits
// 'resync' so every browser socket catches up on what arrived while the link was down.
//
// Events: 'anomaly'(Anomaly), 'incident'(Incident, IncidentChange), 'pins'(PinSummary[]), 'rates'(EventRates), 'session'(SessionInfo),
// 'status'(LinkStatus), 'resync'(), 'term:data'(owner, runId, data), 'term:exit'(owner, TermExit).
import { EventEmitter } from 'node:events';
import { connect, type Socket } from 'node:net';
import type { VerifySweep } from '../../schema/metrics.ts';
import type { Anomaly } from '../../schema/anomalies.ts';
import type { Incident } from '../../schema/incidents.ts';
import { LinkFramer, type CollectorMessage, type LinkCapture, type LinkStatus, type LinkTotals, type TermStartReply, type TermStartRequest, type WebMessage } from '../../schema/link.ts';
import type { PinSummary } from '../../schema/pins.ts';
import type { EventRates } from '../../schema/protocol.ts';
import type { SessionInfo } from '../../schema/session.ts';

const MAX_ANOMALIES = 10_000;
const MAX_RATES = 600;
/** Incidents kept (latest state), as the collector's hub keeps them. */
const MAX_INCIDENTS = 2000;
const RECONNECT_MIN_MS = 100;
const RECONNECT_MAX_MS = 2000;
const TERM_START_TIMEOUT_MS = 120_000;

export class CollectorLink extends EventEmitter {
  private sock: Socket | null = null;
  private closed = false;
  private retryMs = RECONNECT_MIN_MS;
  private retryTimer: NodeJS.Timeout | null = null;
  private connectedOnce = false;
  private sessionInfo: SessionInfo | null = null;
  private statusInfo: LinkStatus | null = null;
  private pinList: PinSummary[] = [];
  private rateRing: EventRates[] = [];
  private totalsInfo: LinkTotals = { events: 0, anomalies: 0, lost: 0, byKind: {} };
  private recent: Anomaly[] = [];
  private capture = false;
  private captureInfo: LinkCapture = { up: false, gaps: 0, lastEventWallMs: null };
  private sweepInfo: VerifySweep | null = null;
  private readonly incidentMap = new Map<number, Incident>();
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (r: TermStartReply) => void; timer: NodeJS.Timeout }>();

  constructor(private readonly path: string) {
    super();
    this.setMaxListeners(0); // one listener set per data-source channel, not per browser
  }

  /** Resolves on the first hello; rejects when the socket cannot be reached within `timeoutMs`. */
  start(timeoutMs = 30_000): Promise<void> {
    this.dial();
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`collector link ${this.path} did not answer within ${timeoutMs} ms`)), timeoutMs);
      this.once('resync', () => {
        clearTimeout(t);
        resolve();
      });
    });
  }

  private dial(): void {
    if (this.closed) return;
    const sock = connect(this.path);
    this.sock = sock;
    sock.setEncoding('utf8');
    const framer = new LinkFramer<CollectorMessage>((m) => this.onMessage(m));
    sock.on('data', (chunk: string) => {
      if (!framer.push(chunk)) sock.destroy();
    });
    sock.on('error', () => undefined);
    sock.on('close', () => {
      if (this.sock === sock) this.sock = null;
      for (const [id, p] of this.pending) {
        clearTimeout(p.timer);
        p.resolve({ ok: false, error: 'the collector link closed while starting the scenario' });
        this.pending.delete(id);
      }
      if (this.closed) return;
      if (this.connectedOnce) {
        this.capture = false;
        this.setStatus({ level: 'error', message: 'the web server lost its link to the collector process; reconnecting', fix: 'if this stays, restart pinwatch serve' });
      }
      this.retryTimer = setTimeout(() => this.dial(), this.retryMs);
      this.retryMs = Math.min(RECONNECT_MAX_MS, this.retryMs * 2);
    });
  }

  private setStatus(s: LinkStatus): void {
    this.statusInfo = s;
    this.emit('status', s);
  }

  private onMessage(m: CollectorMessage): void {
    switch (m.t) {
      case 'hello':
        this.connectedOnce = true;
        this.retryMs = RECONNECT_MIN_MS;
        this.sessionInfo = m.session;
        this.pinList = m.pins;
        this.rateRing = m.rates.slice(-MAX_RATES);
        this.totalsInfo = m.totals;
        this.recent = m.anomalies;
        this.capture = m.capturing;
        this.captureInfo = m.capture;
        if (m.sweep) this.sweepInfo = m.sweep;
        this.incidentMap.clear();
        for (const i of m.incidents) this.incidentMap.set(i.id, i);
        if (m.session) this.emit('session', m.session);
        if (m.status) this.setStatus(m.status);
        this.emit('pins', this.pinList);
        this.emit('resync');
        return;
      case 'anomaly': {
        const ring = this.recent;
        if (ring.length && ring[ring.length - 1]!.seq >= m.a.seq) return; // already have it (hello raced)
        ring.push(m.a);
        if (ring.length > MAX_ANOMALIES) ring.splice(0, ring.length - MAX_ANOMALIES);
        this.emit('anomaly', m.a);
        return;
      }
      case 'incident':
        this.incidentMap.delete(m.i.id); // re-inserted: the map stays in update order for the cap below
        this.incidentMap.set(m.i.id, m.i);
        if (this.incidentMap.size > MAX_INCIDENTS) this.incidentMap.delete(this.incidentMap.keys().next().value!);
        this.emit('incident', m.i, m.change);
        return;
      case 'pins':
        this.pinList = m.pins;
        this.emit('pins', m.pins);
        return;
      case 'rates':
        this.rateRing.push(m.r);
        if (this.rateRing.length > MAX_RATES) this.rateRing.splice(0, this.rateRing.length - MAX_RATES);
        this.totalsInfo = m.totals;
        this.captureInfo = m.capture;
        if (m.sweep) this.sweepInfo = m.sweep;
        this.emit('rates', m.r);
        return;
      case 'session':
        this.sessionInfo = m.s;
        this.emit('session', m.s);
        return;
      case 'status':
        this.capture = m.capturing;
        this.setStatus(m.s);
        return;
      case 'reply': {
        const p = this.pending.get(m.id);
        if (!p) return;
        clearTimeout(p.timer);
        this.pending.delete(m.id);
        p.resolve(m.reply);
        return;
      }
      case 'term:data':
        this.emit('term:data', m.owner, m.runId, m.data);
        return;
      case 'term:exit':
        this.emit('term:exit', m.owner, m.e);
        return;
    }
  }

  private send(m: WebMessage): boolean {
    if (!this.sock || this.sock.destroyed) return false;
    this.sock.write(`${JSON.stringify(m)}\n`);
    return true;
  }

  // ---------------------------------------------------------------- what the web serves from

  session(): SessionInfo | null {
    return this.sessionInfo;
  }
  status(): LinkStatus | null {
    return this.statusInfo;
  }
  pins(): PinSummary[] {
    return this.pinList;
  }
  rates(): EventRates[] {
    return this.rateRing.slice();
  }
  totals(): LinkTotals {
    return this.totalsInfo;
  }
  /** Kept incidents (latest state), oldest first. */
  incidents(): Incident[] {
    return [...this.incidentMap.values()].sort((a, b) => a.id - b.id);
  }
  /** bpftrace up, capture gaps, last event (as of the last rates tick). */
  captureState(): LinkCapture {
    return { ...this.captureInfo };
  }
  /** The collector's pagemap sweep figures (as of the last rates tick); null before the first pass. */
  verifySweep(): VerifySweep | null {
    return this.sweepInfo;
  }
  /** Live capture runs in the collector. */
  capturing(): boolean {
    return this.capture;
  }
  /** Seq of the oldest anomaly kept here (Infinity when none): older ones come from SQLite. */
  firstKeptSeq(): number {
    return this.recent.length ? this.recent[0]!.seq : Infinity;
  }
  /** Kept anomalies with seq > afterSeq, oldest first, at most `limit`. */
  anomaliesAfter(afterSeq: number, limit = MAX_ANOMALIES): Anomaly[] {
    const a = this.recent;
    let lo = 0;
    let hi = a.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (a[mid]!.seq <= afterSeq) lo = mid + 1;
      else hi = mid;
    }
    return a.slice(lo, lo + limit);
  }

  // ---------------------------------------------------------------- scenario terminals (run by the collector)

  startTerm(owner: string, req: TermStartRequest): Promise<TermStartReply> {
    const id = this.nextId++;
    return new Promise((resolve) => {
      if (!this.send({ t: 'term:start', id, owner, req })) {
        resolve({ ok: false, error: 'the collector process is not reachable' });
        return;
      }
      const timer = setTimeout(() => {
        this.pending.delete(id);
        resolve({ ok: false, error: 'the collector did not answer' });
      }, TERM_START_TIMEOUT_MS);
      this.pending.set(id, { resolve, timer });
    });
  }
  resizeTerm(owner: string, runId: string, cols: number, rows: number): void {
    this.send({ t: 'term:resize', owner, runId, cols, rows });
  }
  stopTerm(owner: string, runId: string): void {
    this.send({ t: 'term:stop', owner, runId });
  }
  stopOwner(owner: string): void {
    this.send({ t: 'term:stopOwner', owner });
  }

  close(): void {
    this.closed = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.sock?.destroy();
    this.sock = null;
  }
}
