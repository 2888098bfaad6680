// bpftrace output → typed events. One call per stdout line of `bpftrace -f json -q -B line`; the hot path
// (printf records) reads tab-separated fields straight out of the raw JSON text and allocates only the
// event object (plus the comm string when it is new). Line formats: schema/event-kinds.ts (each kind's
// fields, in printf order), each bpf script's header and bpf/tracepoint/README.md.
//
// Fast path: a printf record whose data has no JSON escapes other than `\t` (the field separator) is read
// in place. Anything else (a quote, backslash or tab inside comm/filename, \uXXXX) goes through JSON.parse
// and the same field readers over the decoded string. Malformed input is reported to sink.malformed and
// never throws. The tracepoint set's readers are compiled from the table (compile.ts); kinds they do not
// know go to kprobeParsers.
import { SENT_MAP, type ParseSink } from '../contracts.ts';
import type { TraceEvent } from '../../schema/events.ts';
import { compileReaders } from './compile.ts';
import { MALFORMED, NEED_SLOW, OK, at, end as dataEnd, failure, isFast, lastNum, nextSep, skipTo, startFast, startSlow, status, text } from './cursor.ts';
import { kprobeParsers } from './kprobe.ts';
import { lostCount } from './ranges.ts';

/** Optional extension of ParseSink: the ready marker's timestamp, when the line carries one (runner sentinels). */
export interface ReadyAtSink {
  readyAt?(tag: string, tsNs: number): void;
}

const PREFIX_017 = '{"type": "printf", "data": "';
const PREFIX_COMPACT = '{"type":"printf","data":"';

let sink: ParseSink = null as unknown as ParseSink;

function emit(e: TraceEvent): void {
  sink.event(e);
}

/** `ready <tag>` or `ready <tag> <tsNs>`: a probe-attachment marker, not an event. */
function ready(): void {
  if (status() !== OK) return;
  const k = nextSep();
  if (status() !== OK) return;
  const S = text();
  if (k < 0) {
    sink.ready(S.slice(at(), dataEnd()));
    return;
  }
  const tag = S.slice(at(), k);
  skipTo(k);
  const tsNs = lastNum();
  if (status() !== OK) return;
  (sink as ParseSink & ReadyAtSink).readyAt?.(tag, tsNs);
  sink.ready(tag);
}

const READERS: Record<string, () => void> = compileReaders(emit);

/** Kinds this module reads itself (the tracepoint set); others go to kprobeParsers. */
export const TRACEPOINT_KINDS: readonly string[] = Object.keys(READERS);
READERS.ready = ready;

/**
 * The readers by (length, first character) of their kind, so a line's kind is matched in place (startsWith at
 * its offset) instead of being sliced into a string and looked up: no allocation per line.
 */
interface KindReader {
  kind: string;
  reader: () => void;
  /** Lines of this kind that arrived (this process): compared with the kernel's count (receivedByKind). */
  received: number;
}
const BY_SHAPE = new Map<number, KindReader[]>();
for (const kind of Object.keys(READERS)) {
  const key = kind.length * 256 + (kind.charCodeAt(0) & 255);
  let list = BY_SHAPE.get(key);
  if (list === undefined) BY_SHAPE.set(key, (list = []));
  list.push({ kind, reader: READERS[kind], received: 0 });
}
/** The same for the kinds kprobe parsers read (their lines take the slow path anyway). */
const receivedKprobe = new Map<string, number>();

/**
 * Event lines that arrived per printed kind since this process started, whatever became of them (an event, a
 * malformed line): what a program compiled with countSent printed minus this is what the perf buffer lost.
 */
export function receivedByKind(): Record<string, number> {
  const out: Record<string, number> = {};
  for (const list of BY_SHAPE.values()) for (const r of list) if (r.received !== 0) out[r.kind] = r.received;
  for (const [kind, n] of receivedKprobe) out[kind] = n;
  return out;
}

function readerAt(S: string, from: number, to: number): KindReader | undefined {
  const list = BY_SHAPE.get((to - from) * 256 + (S.charCodeAt(from) & 255));
  if (list === undefined) return undefined;
  for (let i = 0; i < list.length; i++) if (S.startsWith(list[i].kind, from)) return list[i];
  return undefined;
}

/** Reads the kind (first field) and runs its reader. Returns false when the fast path cannot read the line. */
function dispatch(line: string): boolean {
  const k = nextSep();
  if (status() === NEED_SLOW) return false;
  const kindEnd = k < 0 ? dataEnd() : k;
  const found = readerAt(text(), at(), kindEnd);
  if (found === undefined) {
    unknownKind(line, text().slice(at(), kindEnd));
    return true;
  }
  found.received++;
  const { kind, reader } = found;
  if (k < 0) {
    sink.malformed(line, `no fields after kind ${kind}`);
    return true;
  }
  skipTo(k);
  reader();
  const st = status();
  if (st === NEED_SLOW) return false;
  if (st === MALFORMED) sink.malformed(line, `${kind}: ${failure()}`);
  return true;
}

function unknownKind(line: string, kind: string): void {
  const parser = kprobeParsers[kind];
  if (parser === undefined) {
    sink.malformed(line, `unknown kind ${JSON.stringify(kind.slice(0, 40))}`);
    return;
  }
  receivedKprobe.set(kind, (receivedKprobe.get(kind) ?? 0) + 1);
  const S = text();
  let data: string;
  if (isFast()) {
    try {
      data = JSON.parse('"' + S.slice(at(), dataEnd()) + '"') as string;
    } catch {
      sink.malformed(line, 'bad string escape');
      return;
    }
  } else {
    data = S.slice(at(), dataEnd());
  }
  try {
    parser(data.split('\t'), sink, line);
  } catch (err) {
    sink.malformed(line, `${kind}: parser threw: ${(err as Error).message}`);
  }
}

/**
 * Parse one line of bpftrace stdout (without its '\n') and report what it meant to `sink`.
 * Never throws on bad input.
 */
export function parseLine(line: string, out: ParseSink): void {
  sink = out;
  let start: number;
  if (line.startsWith(PREFIX_017)) start = PREFIX_017.length;
  else if (line.startsWith(PREFIX_COMPACT)) start = PREFIX_COMPACT.length;
  else {
    otherLine(line);
    return;
  }
  let end = line.length;
  if (line.charCodeAt(end - 1) === 13) end--; // CRLF, should a pty ever be in between
  // The record must close with `"}`.
  if (end - start < 2 || line.charCodeAt(end - 1) !== 125 || line.charCodeAt(end - 2) !== 34) {
    sink.malformed(line, 'truncated printf record');
    return;
  }
  end -= 2;
  // A trailing escaped newline (printf("...\n")) is dropped: an odd run of backslashes before the 'n'.
  if (end - start >= 2 && line.charCodeAt(end - 1) === 110 && line.charCodeAt(end - 2) === 92) {
    let b = 0;
    for (let i = end - 2; i >= start && line.charCodeAt(i) === 92; i--) b++;
    if (b % 2 === 1) end -= 2;
  }
  startFast(line, start, end);
  if (dispatch(line)) return;
  slowPrintf(line);
}

function slowPrintf(line: string): void {
  let rec: { type?: unknown; data?: unknown };
  try {
    rec = JSON.parse(line) as { type?: unknown; data?: unknown };
  } catch {
    sink.malformed(line, 'invalid JSON');
    return;
  }
  if (typeof rec?.data !== 'string') {
    sink.malformed(line, 'printf record without string data');
    return;
  }
  startSlow(rec.data);
  dispatch(line);
}

function sentCounts(v: unknown): Record<string, number> | null {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return null;
  const out: Record<string, number> = {};
  for (const [kind, n] of Object.entries(v as Record<string, unknown>)) {
    const c = lostCount(n);
    if (c === null || !/^[a-z][a-z0-9_]*$/.test(kind)) return null;
    out[kind] = c;
  }
  return out;
}

function otherLine(line: string): void {
  if (line.length === 0 || (line.length === 1 && line.charCodeAt(0) === 13)) return; // bpftrace's blank lines at exit
  if (line.charCodeAt(0) !== 123 /* { */) {
    // 0.17 prints some warnings as plain text on stdout.
    sink.message?.(line);
    return;
  }
  let rec: { type?: unknown; data?: unknown };
  try {
    rec = JSON.parse(line) as { type?: unknown; data?: unknown };
  } catch {
    sink.malformed(line, 'invalid JSON');
    return;
  }
  if (rec === null || typeof rec !== 'object') {
    sink.malformed(line, 'not a JSON object');
    return;
  }
  switch (rec.type) {
    case 'printf':
      if (typeof rec.data !== 'string') {
        sink.malformed(line, 'printf record without string data');
        return;
      }
      startSlow(rec.data);
      dispatch(line);
      return;
    case 'lost_events': {
      const d = rec.data as { events?: unknown; count?: unknown } | null;
      const n = lostCount(d?.events ?? d?.count);
      if (n === null) sink.malformed(line, 'lost_events without a count (a non-negative integer)');
      else sink.lost(n);
      return;
    }
    case 'map': {
      // The per-kind counts of a countSent program (runner/program.ts); other map dumps are messages.
      const counts = (rec.data as Record<string, unknown> | null)?.[`@${SENT_MAP}`];
      if (counts === undefined) {
        sink.message?.(line);
        return;
      }
      const sent = sentCounts(counts);
      if (sent === null) sink.malformed(line, `@${SENT_MAP} is not an object of non-negative integer counts`);
      else sink.sent?.(sent);
      return;
    }
    default:
      // attached_probes, time, join, ...: not events.
      sink.message?.(line);
  }
}
