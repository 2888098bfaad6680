// Parsers for the kprobe set's lines (bpf/kprobe/*.bt), looked up by parseLine when a printf line's first
// field is not a tracepoint-set kind. Built from schema/event-kinds.ts: each kind's fields in printf order,
// read from the split line (a kprobe line is rare next to the tracepoint set's hot lines).
//
// Contract: `fields` are the line's tab-separated fields, already unescaped, kind first
// (fields[0] === the key), comm last. The data is split on every tab: comm may contain tabs, so everything
// after the last line field is the comm. A parser calls sink.event() with one schema event, or
// sink.malformed(line, reason); it must not throw.
//
// One exception to "one event per line": `gup_pfn` lines (one per page a GUP call returned) are
// continuation lines. They are buffered per thread and attached to the `gup` line that follows them
// from the same return probe (same CPU, so in order), which is the one that emits the GupEvent. The probe
// stamps them all with one timestamp: a full perf buffer drops single records, and a gup line whose own
// pfn lines were dropped must not take those of an earlier call of its thread (nor a later call's).

import type { ParseSink } from '../contracts.ts';
import { ADDR_LIMIT, EVENT_KINDS, kindRow, type AnyKindRow } from '../../schema/event-kinds.ts';
import type { EventKind, GupEvent, TraceEvent } from '../../schema/events.ts';
import { fieldRangeProblem, headRangeProblem } from './ranges.ts';

export { GUP_CALLERS } from '../../schema/event-kinds.ts';

type Parser = (fields: string[], sink: ParseSink, line: string) => void;

/** Thrown inside a parser only; caught by `guard`, reported as malformed. */
class Bad extends Error {}

function int(fields: string[], i: number, what: string): number {
  const s = fields[i];
  if (s === undefined || s === '') throw new Bad(`missing ${what}`);
  const n = Number(s);
  if (!Number.isInteger(n)) throw new Bad(`${what} not an integer: ${JSON.stringify(s.slice(0, 30))}`);
  return n;
}

function ptr(fields: string[], i: number, what: string): string {
  const s = fields[i];
  if (s === undefined || !/^0x[0-9a-f]+$/.test(s)) throw new Bad(`${what} not a hex pointer`);
  return s;
}

function string(fields: string[], i: number, what: string): string {
  const s = fields[i];
  if (s === undefined) throw new Bad(`missing ${what}`);
  return s;
}

/** comm is the last field; it may itself contain tabs, so everything from `from` on is the comm. */
function commFrom(fields: string[], from: number): string {
  if (fields.length <= from) throw new Bad('missing comm');
  return fields.length === from + 1 ? fields[from] : fields.slice(from).join('\t');
}

function guard(kind: string, body: (f: string[], sink: ParseSink) => TraceEvent | null): Parser {
  return (fields, sink, line) => {
    let e: TraceEvent | null;
    try {
      e = body(fields, sink);
    } catch (err) {
      sink.malformed(line, `${kind}: ${(err as Error).message}`);
      return;
    }
    if (e) sink.event(e);
  };
}

/** Upper bound on pages per GUP call buffered from gup_pfn lines (the script caps at PW_MAX_PFNS). */
const MAX_BUFFERED_PFNS = 1 << 16;

/** pfns of the GUP return in progress, per tid, with the timestamp its lines carry. */
const pendingPfns = new Map<number, { tsNs: number; pfns: number[] }>();

/** Forget buffered gup_pfn lines (a new stream, tests). */
export function resetKprobeParserState(): void {
  pendingPfns.clear();
}

/**
 * The pfns the gup_pfn lines of this very call buffered for its gup line (same timestamp). pfns[j] is the page
 * at addr + j pages, so they stop at the first hole a dropped line left: the pages after it keep pagemap's pfn.
 */
function takePfns(e: GupEvent): number[] {
  const buffered = pendingPfns.get(e.tid);
  pendingPfns.delete(e.tid);
  if (!buffered || buffered.tsNs !== e.tsNs || e.ret <= 0) return [];
  const pfns: number[] = [];
  for (let i = 0; i < buffered.pfns.length && i < e.ret && buffered.pfns[i] !== undefined; i++) pfns.push(buffered.pfns[i]);
  return pfns;
}

/** Event fields a kprobe line does not carry: how the parser fills them. */
const FILLED: Record<string, (e: TraceEvent) => unknown> = {
  pfns: (e) => takePfns(e as GupEvent),
  childComm: (e) => e.comm,
};

/** The parser of one kind, from its row: tsNs pid tid, the row's fields in order, comm. */
function rowParser(kind: EventKind, row: AnyKindRow): (f: string[]) => TraceEvent {
  const n = row.fields.length;
  return (f) => {
    const e: Record<string, unknown> = { kind, tsNs: int(f, 1, 'tsNs'), pid: int(f, 2, 'pid'), tid: int(f, 3, 'tid'), comm: commFrom(f, 4 + n) };
    for (let i = 0; i < n; i++) {
      const [name, type, opt] = row.fields[i];
      const label = opt?.printed ?? name;
      if (typeof type !== 'string') {
        const s = f[4 + i];
        const w = opt?.numbered && s !== undefined && /^\d$/.test(s) ? type[Number(s)] : s;
        if (w === undefined || !type.includes(w)) throw new Bad(`unknown ${label} ${JSON.stringify(s)}`);
        e[name] = w;
      } else if (type === 'ptr') e[name] = ptr(f, 4 + i, name);
      else if (type === 'word' || type === 'text') e[name] = string(f, 4 + i, name);
      else if (type === 'bool') e[name] = int(f, 4 + i, name) === 1;
      else {
        const v = int(f, 4 + i, name);
        e[name] = opt?.clampToAddrLimit && v > ADDR_LIMIT ? ADDR_LIMIT : v;
      }
    }
    const ev = e as unknown as TraceEvent;
    const bad = headRangeProblem(ev) ?? fieldRangeProblem(ev, row);
    if (bad !== null) throw new Bad(bad);
    const why = row.check ? (row.check as (e: TraceEvent) => string | null)(ev) : null;
    if (why !== null) throw new Bad(why);
    for (const name of row.filled ?? []) e[name] = FILLED[name](ev);
    return ev;
  };
}

export const kprobeParsers: Record<string, Parser> = {
  gup_pfn: guard('gup_pfn', (f) => {
    const tsNs = int(f, 1, 'tsNs');
    const tid = int(f, 3, 'tid');
    const index = int(f, 4, 'index');
    const pfn = int(f, 5, 'pfn');
    const count = int(f, 6, 'count');
    commFrom(f, 7);
    if (index < 0 || count < 1 || index + count > MAX_BUFFERED_PFNS) throw new Bad(`bad index/count ${index}/${count}`);
    let cur = pendingPfns.get(tid);
    if (!cur || cur.tsNs !== tsNs) pendingPfns.set(tid, (cur = { tsNs, pfns: [] }));
    for (let i = 0; i < count; i++) cur.pfns[index + i] = pfn + i;
    return null;
  }),
};

for (const kind of EVENT_KINDS) {
  const row = kindRow(kind);
  const tag = row.set === 'kprobe' ? kind : row.kprobeTag;
  if (tag !== undefined) kprobeParsers[tag] = guard(tag, rowParser(kind, row));
}
