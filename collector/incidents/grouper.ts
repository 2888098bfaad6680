// Groups anomalies into incidents: anomalies about the same pin (or, without a pin, the same process) that
// the same event caused — the same triggering event cited as evidence, or the same trigger timestamp — form
// one incident. A finding that cites no triggering event (a periodic pagemap check found the divergence after
// the zap it follows) joins the newest open incident of its pin that covers its address. Its severity is the highest of its anomalies, its title is rebuilt as findings arrive (the
// pagemap confirmation of a MAP_FIXED comes ~20 ms after the zap itself). An incident closes when its pin is
// released or its process is gone; anomalies that arrive later open a new one.
//
// Fed by the Collector's anomaly stream (live) or a recording's anomalies in seq order (replay of files
// written before incidents were stored): the same anomalies give the same incidents.
import type { Anomaly, RuleId, Severity } from '../../schema/anomalies.ts';
import { SEVERITIES } from '../../schema/anomalies.ts';
import type { SequencedEvent } from '../../schema/events.ts';
import type { Incident, IncidentChange } from '../../schema/incidents.ts';
import { PAGE_SIZE } from '../../schema/kernel.ts';
import { ALL_RULES } from '../rules/index.ts';
import { causeLabel, isRegistration } from './cause.ts';
import { incidentTitle, pinSubject, processSubject, type PinFacts } from './title.ts';

export interface GroupingContext {
  /** The pin an anomaly names, if known. */
  pin(id: number): PinFacts | null;
  /** An event cited as evidence, if still known (live: recent events that touched pins; replay: the file). */
  event(seq: number): SequencedEvent | null;
  wallMs(): number;
}

export interface IncidentUpdate {
  incident: Incident;
  change: IncidentChange;
}

/** Open incidents kept per subject: enough for the findings of one event still arriving. */
const OPEN_PER_SUBJECT = 8;

const RULE_TITLES = new Map<string, string>(ALL_RULES.map((r) => [r.info.id, r.info.title]));
/** Rules are listed most severe first, by their default severity. */
const RULE_SEVERITY = new Map<string, Severity>(ALL_RULES.map((r) => [r.info.id, r.info.severity]));
const rank = (s: Severity) => SEVERITIES.indexOf(s);

interface Open {
  incident: Incident;
  /** The most severe rule, and the pin's writability, for the title. */
  topRule: RuleId;
  writable: boolean;
  onPin: boolean;
  ruleTitle: string;
  /** Address ranges [start, end) of its anomalies. */
  ranges: [number, number][];
}

export class IncidentGrouper {
  private nextId: number;
  private readonly ctx: GroupingContext;
  /** Subject key ('pin:12' | 'pid:100') → open incidents, newest last. */
  private readonly open = new Map<string, Open[]>();

  constructor(ctx: GroupingContext, firstId = 1) {
    this.ctx = ctx;
    this.nextId = firstId;
  }

  get nextIncidentId(): number {
    return this.nextId;
  }

  /** One anomaly in: the incident it opened or joined (a snapshot: safe to queue). */
  add(a: Anomaly): IncidentUpdate {
    const key = a.pinId !== null ? `pin:${a.pinId}` : `pid:${a.pid}`;
    const causeSeq = this.causeSeqOf(a);
    let list = this.open.get(key);
    const joined =
      list?.find((o) => (causeSeq !== null && o.incident.causeSeq === causeSeq) || o.incident.tsNs === a.tsNs) ??
      (causeSeq === null ? list?.findLast((o) => o.ranges.some(([s, e]) => a.addr < e && a.addr + a.len > s)) : undefined);
    if (joined) {
      this.join(joined, a, causeSeq);
      return { incident: snapshot(joined.incident), change: 'updated' };
    }
    const o = this.start(a, causeSeq);
    if (!list) this.open.set(key, (list = []));
    list.push(o);
    if (list.length > OPEN_PER_SUBJECT) list.shift();
    return { incident: snapshot(o.incident), change: 'opened' };
  }

  /** The pin was released: its open incidents close. */
  pinReleased(pinId: number): IncidentUpdate[] {
    return this.close(`pin:${pinId}`);
  }

  /** The process exited: its process-wide incidents close (pin incidents close with their pins). */
  processGone(pid: number): IncidentUpdate[] {
    return this.close(`pid:${pid}`);
  }

  /** Open incidents, oldest first. */
  openIncidents(): Incident[] {
    const all: Incident[] = [];
    for (const list of this.open.values()) for (const o of list) all.push(snapshot(o.incident));
    return all.sort((x, y) => x.id - y.id);
  }

  // ---------------------------------------------------------------- internals

  private close(key: string): IncidentUpdate[] {
    const list = this.open.get(key);
    if (!list) return [];
    this.open.delete(key);
    const now = this.ctx.wallMs();
    return list.map((o) => {
      o.incident.closedWallMs = now;
      return { incident: snapshot(o.incident), change: 'closed' as const };
    });
  }

  /**
   * The triggering event an anomaly cites: the first event evidence after the registration (a zap, then the
   * refault it caused: the zap is the cause).
   */
  private causeSeqOf(a: Anomaly): number | null {
    let best: number | null = null;
    for (const ev of a.evidence) {
      if (ev.type !== 'event' || ev.seq < 0 || (best !== null && ev.seq >= best)) continue;
      const e = this.ctx.event(ev.seq);
      if (e && !isRegistration(e as Parameters<typeof isRegistration>[0]) && causeLabel(e) !== null) best = ev.seq;
    }
    return best;
  }

  private start(a: Anomaly, causeSeq: number | null): Open {
    const facts = a.pinId !== null ? this.ctx.pin(a.pinId) : null;
    const cause = causeSeq !== null ? this.ctx.event(causeSeq) : null;
    const now = this.ctx.wallMs();
    const o: Open = {
      topRule: a.rule,
      writable: facts?.writable ?? true,
      onPin: a.pinId !== null,
      ruleTitle: RULE_TITLES.get(a.rule) ?? a.rule,
      ranges: [[a.addr, a.addr + a.len]],
      incident: {
        id: this.nextId++,
        severity: a.severity,
        title: '',
        cause: cause ? causeLabel(cause) : null,
        causeSeq,
        pid: a.pid,
        comm: a.comm,
        pinId: a.pinId,
        subject: facts ? pinSubject(facts) : a.pinId !== null ? `pin ${a.pinId}` : processSubject(a.comm, a.pid),
        pages: pagesOf(a),
        confirmed: a.confirmed,
        tsNs: a.tsNs,
        openedWallMs: a.wallMs || now,
        updatedWallMs: a.wallMs || now,
        closedWallMs: null,
        rules: [a.rule],
        anomalySeqs: [a.seq],
      },
    };
    o.incident.title = this.title(o);
    return o;
  }

  private join(o: Open, a: Anomaly, causeSeq: number | null): void {
    const inc = o.incident;
    if (rank(a.severity) < rank(inc.severity)) {
      inc.severity = a.severity;
      o.topRule = a.rule;
      o.ruleTitle = RULE_TITLES.get(a.rule) ?? a.rule;
    }
    if (inc.causeSeq === null && causeSeq !== null) {
      const cause = this.ctx.event(causeSeq);
      inc.causeSeq = causeSeq;
      inc.cause = cause ? causeLabel(cause) : null;
    }
    inc.pages = Math.max(inc.pages, pagesOf(a));
    o.ranges.push([a.addr, a.addr + a.len]);
    inc.confirmed ||= a.confirmed;
    inc.updatedWallMs = Math.max(inc.updatedWallMs, a.wallMs || this.ctx.wallMs());
    if (!inc.rules.includes(a.rule)) {
      inc.rules.push(a.rule);
      inc.rules.sort((x, y) => rank(RULE_SEVERITY.get(x) ?? 'warning') - rank(RULE_SEVERITY.get(y) ?? 'warning'));
    }
    if (!inc.anomalySeqs.includes(a.seq)) inc.anomalySeqs.push(a.seq);
    inc.title = this.title(o);
  }

  private title(o: Open): string {
    const i = o.incident;
    return incidentTitle({
      cause: i.cause,
      rule: o.topRule,
      severity: i.severity,
      ruleTitle: o.ruleTitle,
      pages: i.pages,
      subject: i.subject,
      onPin: o.onPin,
      writable: o.writable,
      confirmed: i.confirmed,
    });
  }
}

function pagesOf(a: Anomaly): number {
  return Math.max(1, Math.ceil(a.len / PAGE_SIZE));
}

function snapshot(i: Incident): Incident {
  return { ...i, rules: [...i.rules], anomalySeqs: [...i.anomalySeqs] };
}
