// bpftrace output → typed events. One call per stdout line of `bpftrace -f json -q -B line`; the hot path
// (printf records) reads tab-separated fields straight out of the raw JSON text and allocates only the
// event object (plus the comm string when it is new). Line formats: each bpf/tracepoint/*.bt header
// and the table in bpf/tracepoint/README.md.
//
// Fast path: a printf record whose data has no JSON escapes other than `\t` (the field separator) is read
// in place. Anything else (a quote, backslash or tab inside comm/filename, \uXXXX) goes through JSON.parse
// and the same field readers over the decoded string. Malformed input is reported to sink.malformed and
// never throws.
import type { ParseSink } from '../contracts.ts';
import type {
  CollapseFileEvent,
  CollapseIsolateEvent,
  ForkEvent,
  KsmMergeEvent,
  MigratePteEvent,
  PinSource,
  ScanFileEvent,
  ScanPmdEvent,
  TraceEvent,
  VfioDmaEvent,
  UffdRegisterEvent,
} from '../../schema/events.ts';
import { kprobeParsers } from './kprobe.ts';
import { PID_MAX_LIMIT, lostCount } from './ranges.ts';

/** Optional extension of ParseSink: the ready marker's timestamp, when the line carries one (runner sentinels). */
export interface ReadyAtSink {
  readyAt?(tag: string, tsNs: number): void;
}

const PREFIX_017 = '{"type": "printf", "data": "';
const PREFIX_COMPACT = '{"type":"printf","data":"';

// ---- cursor state (module-level: no per-line allocation) ----
let S = ''; // text being read: the raw line (fast) or the decoded data (slow)
let pos = 0; // start of the next field
let lim = 0; // end of the data
let fast = true; // fast: separator is the 2-char escape `\t`; slow: a real tab
let sepLen = 2;
let state = 0; // 0 ok, 1 malformed, 2 needs the slow path
let reason = '';
let sink: ParseSink = null as unknown as ParseSink;

const OK = 0;
const MALFORMED = 1;
const NEED_SLOW = 2;

function fail(why: string): void {
  if (state === OK) {
    state = MALFORMED;
    reason = why;
  }
}

/** Index of the separator ending the current field, or -1 (no more separators / needs slow path). */
function nextSep(): number {
  if (fast) {
    const k = S.indexOf('\\', pos);
    if (k < 0 || k >= lim) return -1;
    if (S.charCodeAt(k + 1) !== 116 /* t */) {
      state = NEED_SLOW;
      return -1;
    }
    return k;
  }
  const k = S.indexOf('\t', pos);
  return k < 0 || k >= lim ? -1 : k;
}

let fieldNo = 0;

/** A decimal integer field (optional leading '-'). Values past 2^53 lose their low bits (documented per kind). */
function num(): number {
  if (state !== OK) return 0;
  fieldNo++;
  const k = nextSep();
  if (k < 0) {
    fail(`missing field ${fieldNo}`);
    return 0;
  }
  return digits(k);
}

/** A decimal integer that is the last field of the data. */
function lastNum(): number {
  if (state !== OK) return 0;
  fieldNo++;
  if (nextSep() >= 0) {
    fail(`extra fields after field ${fieldNo}`);
    return 0;
  }
  if (state !== OK) return 0;
  return digits(lim);
}

function digits(k: number): number {
  let i = pos;
  let neg = false;
  if (S.charCodeAt(i) === 45 /* - */) {
    neg = true;
    i++;
  }
  if (i === k) {
    fail(`empty numeric field ${fieldNo}`);
    return 0;
  }
  if (k - i > 20) {
    fail(`number too long: field ${fieldNo}`);
    return 0;
  }
  let v = 0;
  for (; i < k; i++) {
    const d = S.charCodeAt(i) - 48;
    if (d < 0 || d > 9) {
      fail(`non-numeric field ${fieldNo}`);
      return 0;
    }
    v = v * 10 + d;
  }
  if (v > U64_MAX || (k - pos - (neg ? 1 : 0) === 20 && S.substring(k - 20, k) > U64_MAX_TEXT)) {
    fail(`number out of 64-bit range: field ${fieldNo}`);
    return 0;
  }
  pos = k + sepLen;
  return neg ? -v : v;
}

/**
 * A field that becomes an INTEGER column or a user extent (timestamp, address, length): a non-negative integer
 * exact in a JS number (< 2^53), so SQLite stores an INTEGER, never a REAL.
 */
function uNum(): number {
  const v = num();
  if (state === OK && (v < 0 || v > MAX_EXACT)) fail(`field ${fieldNo} out of range`);
  return v;
}

/** A pid or tid: 0 ..= PID_MAX_LIMIT. */
function pidNum(): number {
  const v = num();
  if (state === OK && (v < 0 || v > PID_MAX_LIMIT)) fail(`pid field ${fieldNo} out of range`);
  return v;
}

/** A 0x-hex kernel pointer field, kept as its text. */
function hex(): string {
  if (state !== OK) return '';
  fieldNo++;
  const k = nextSep();
  if (k < 0) {
    fail(`missing field ${fieldNo}`);
    return '';
  }
  if (k - pos < 3 || S.charCodeAt(pos) !== 48 || S.charCodeAt(pos + 1) !== 120) {
    fail(`not a 0x pointer: field ${fieldNo}`);
    return '';
  }
  for (let i = pos + 2; i < k; i++) {
    const c = S.charCodeAt(i);
    if (!((c >= 48 && c <= 57) || (c >= 97 && c <= 102) || (c >= 65 && c <= 70))) {
      fail(`not a 0x pointer: field ${fieldNo}`);
      return '';
    }
  }
  const s = commAt(pos, k); // pointers repeat; a flat copy does not pin the line
  pos = k + sepLen;
  return s;
}

/** A word field that must be one of `words`; returns its index (no allocation). */
function word(words: readonly string[]): number {
  if (state !== OK) return -1;
  fieldNo++;
  const k = nextSep();
  if (k < 0) {
    fail(`missing field ${fieldNo}`);
    return -1;
  }
  const n = k - pos;
  for (let w = 0; w < words.length; w++) {
    if (words[w].length === n && S.startsWith(words[w], pos)) {
      pos = k + sepLen;
      return w;
    }
  }
  fail(`unexpected value in field ${fieldNo}`);
  return -1;
}

// comm strings repeat: a small direct-mapped cache keyed by (length, first and last char) returns the same
// flat string without allocating; a slice would also pin the whole line in memory.
const COMM_SLOTS = 1024;
const commSlots: string[] = new Array<string>(COMM_SLOTS).fill('\u0000');
function commAt(from: number, to: number): string {
  const n = to - from;
  if (n === 0) return '';
  const h = (n * 31 + S.charCodeAt(from) * 7 + S.charCodeAt(to - 1) * 131 + S.charCodeAt(from + (n >> 1))) & (COMM_SLOTS - 1);
  const c = commSlots[h];
  if (c.length === n && S.startsWith(c, from)) return c;
  const s = S.slice(from, to);
  // Force a flat copy detached from the line (V8 keeps slices of >= 13 chars as views on the parent).
  const flat = n >= 13 ? (' ' + s).slice(1) : s;
  commSlots[h] = flat;
  return flat;
}

/** The last field (comm): everything to the end of the data, tabs included. */
function rest(): string {
  if (state !== OK) return '';
  if (fast) {
    const b = S.indexOf('\\', pos);
    if (b >= 0 && b < lim) {
      state = NEED_SLOW;
      return '';
    }
  }
  return commAt(pos, lim);
}

/** Two trailing string fields (filename, comm): comm after the last separator, the rest is filename. */
let tailComm = '';
function stringThenComm(): string {
  tailComm = '';
  if (state !== OK) return '';
  fieldNo++;
  if (fast) {
    const k = nextSep();
    if (k < 0) {
      if (state === OK) fail(`missing field ${fieldNo}`);
      return '';
    }
    const b = S.indexOf('\\', k + 2);
    if (b >= 0 && b < lim) {
      state = NEED_SLOW;
      return '';
    }
    const s = commAt(pos, k);
    pos = k + 2;
    tailComm = commAt(pos, lim);
    return s;
  }
  const k = S.lastIndexOf('\t', lim - 1);
  if (k < pos) {
    fail(`missing field ${fieldNo}`);
    return '';
  }
  const s = commAt(pos, k);
  pos = k + 1;
  tailComm = commAt(pos, lim);
  return s;
}

const SOURCES: readonly PinSource[] = ['io_uring', 'vmsplice', 'vfio', 'iommufd', 'rdma', 'gup'];
const MAP_UNMAP = ['map', 'unmap'] as const;
const REG_UNREG = ['register', 'unregister'] as const;
const SET_REMOVE = ['set', 'remove'] as const;

/** 2^64 - 1 as a double (2^64): bpftrace prints nothing larger. */
const U64_MAX = 18446744073709551615;
const U64_MAX_TEXT = '18446744073709551615';
const MAX_EXACT = Number.MAX_SAFE_INTEGER;
/** Page counts and folio orders beyond these are not a kernel's: their byte length would not be an exact integer. */
const MAX_PAGES = 2 ** 36;
const MAX_ORDER = 30;

function emit(e: TraceEvent): void {
  sink.event(e);
}

// ---- one reader per kind: field order = the bpf script's printf ----

function pinIovec(): void {
  const tsNs = uNum(), pid = pidNum(), tid = pidNum();
  const src = word(SOURCES);
  const fd = num(), opcode = num(), index = num(), addr = uNum(), len = uNum();
  const comm = rest();
  if (state === OK) emit({ kind: 'pin_iovec', tsNs, pid, tid, comm, source: SOURCES[src], fd, opcode, index, addr, len });
}

function pinResult(): void {
  const tsNs = uNum(), pid = pidNum(), tid = pidNum();
  const src = word(SOURCES);
  const fd = num(), opcode = num(), nr = num(), ret = num();
  const mm = hex();
  const comm = rest();
  if (state === OK) emit({ kind: 'pin_result', tsNs, pid, tid, comm, source: SOURCES[src], fd, opcode, nr, ret, mm });
}

function vfioDma(): void {
  const tsNs = uNum(), pid = pidNum(), tid = pidNum();
  const op = word(MAP_UNMAP);
  const fd = num(), vaddr = uNum(), iova = num(), size = uNum(), flags = num(), ret = num();
  const comm = rest();
  if (state === OK) {
    const e: VfioDmaEvent = { kind: 'vfio_dma', tsNs, pid, tid, comm, op: MAP_UNMAP[op], fd, vaddr, iova, size, flags, ret };
    emit(e);
  }
}

function uffdRegister(): void {
  const tsNs = uNum(), pid = pidNum(), tid = pidNum();
  const op = word(REG_UNREG);
  const fd = num(), addr = uNum(), len = uNum(), mode = num(), ret = num();
  const comm = rest();
  if (state === OK) {
    const e: UffdRegisterEvent = { kind: 'uffd_register', tsNs, pid, tid, comm, op: REG_UNREG[op], fd, addr, len, mode, ret };
    emit(e);
  }
}

function madvise(): void {
  const tsNs = uNum(), pid = pidNum(), tid = pidNum(), addr = uNum(), len = uNum(), behavior = num(), ret = num();
  const comm = rest();
  if (state === OK) emit({ kind: 'madvise', tsNs, pid, tid, comm, addr, len, behavior, ret });
}

function munmap(): void {
  const tsNs = uNum(), pid = pidNum(), tid = pidNum(), addr = uNum(), len = uNum(), ret = num();
  const comm = rest();
  if (state === OK) emit({ kind: 'munmap', tsNs, pid, tid, comm, addr, len, ret });
}

function mremap(): void {
  const tsNs = uNum(), pid = pidNum(), tid = pidNum(), addr = uNum(), oldLen = uNum(), newLen = uNum();
  const flags = num(), newAddrArg = num(), ret = num();
  const comm = rest();
  if (state === OK) emit({ kind: 'mremap', tsNs, pid, tid, comm, addr, oldLen, newLen, flags, newAddrArg, ret });
}

function mmapFixed(): void {
  const tsNs = uNum(), pid = pidNum(), tid = pidNum(), addr = uNum(), len = uNum(), prot = num(), flags = num();
  const fd = num(), ret = num();
  const comm = rest();
  if (state === OK) emit({ kind: 'mmap_fixed', tsNs, pid, tid, comm, addr, len, prot, flags, fd, ret });
}

function fork(): void {
  const tsNs = uNum(), pid = pidNum(), tid = pidNum(), childPid = pidNum(), cloneFlags = num();
  const comm = rest();
  // The child's comm at fork is the parent's (fork.bt).
  if (state === OK) {
    const e: ForkEvent = { kind: 'fork', tsNs, pid, tid, comm, childPid, childComm: comm, cloneFlags };
    emit(e);
  }
}

function exit(): void {
  const tsNs = uNum(), pid = pidNum(), tid = pidNum();
  const comm = rest();
  if (state === OK) emit({ kind: 'exit', tsNs, pid, tid, comm });
}

function close(): void {
  const tsNs = uNum(), pid = pidNum(), tid = pidNum(), fd = num();
  const comm = rest();
  if (state === OK) emit({ kind: 'close', tsNs, pid, tid, comm, fd });
}

function shmdt(): void {
  const tsNs = num(), pid = num(), tid = num(), addr = num(), len = num(), ret = num();
  const comm = rest();
  if (state === OK) emit({ kind: 'shmdt', tsNs, pid, tid, comm, addr, len, ret });
}

function uringEnter(): void {
  const tsNs = num(), pid = num(), tid = num(), fd = num(), toSubmit = num(), flags = num();
  const comm = rest();
  if (state === OK) emit({ kind: 'uring_enter', tsNs, pid, tid, comm, fd, toSubmit, flags });
}

function uringSqpoll(): void {
  const tsNs = num(), pid = num(), tid = num(), fd = num();
  const comm = rest();
  if (state === OK) emit({ kind: 'uring_sqpoll', tsNs, pid, tid, comm, fd });
}

function mmapBacking(): void {
  const tsNs = num(), pid = num(), tid = num(), addr = num(), len = num(), flags = num(), magic = num();
  const name = stringThenComm();
  if (state === OK) emit({ kind: 'mmap_backing', tsNs, pid, tid, comm: tailComm, addr, len, flags, magic, name });
}

function exec(): void {
  const tsNs = num(), pid = num(), tid = num();
  const comm = rest();
  if (state === OK) emit({ kind: 'exec', tsNs, pid, tid, comm });
}

function mmapForget(): void {
  const tsNs = num(), pid = num(), tid = num();
  const comm = rest();
  if (state === OK) emit({ kind: 'mmap_forget', tsNs, pid, tid, comm });
}

function fault(): void {
  const tsNs = uNum(), pid = pidNum(), tid = pidNum(), addr = uNum(), errorCode = num(), ip = num();
  const comm = rest();
  if (state === OK) emit({ kind: 'fault', tsNs, pid, tid, comm, addr, errorCode, ip });
}

function collapseFile(): void {
  const tsNs = uNum(), pid = pidNum(), tid = pidNum();
  const mm = hex();
  const hpfn = num(), index = num(), addr = uNum(), isShmem = num(), nr = num(), result = num();
  if (state === OK && (nr < -1 || nr > MAX_PAGES)) fail('nr out of range');
  const filename = stringThenComm();
  if (state === OK) {
    const e: CollapseFileEvent = {
      kind: 'collapse_file', tsNs, pid, tid, comm: tailComm, mm, hpfn, index, addr, isShmem: isShmem !== 0, filename, nr, result,
    };
    emit(e);
  }
}

function scanFile(): void {
  const tsNs = uNum(), pid = pidNum(), tid = pidNum();
  const mm = hex();
  const pfn = num(), present = num(), swap = num(), result = num();
  const filename = stringThenComm();
  if (state === OK) {
    const e: ScanFileEvent = { kind: 'scan_file', tsNs, pid, tid, comm: tailComm, mm, pfn, filename, present, swap, result };
    emit(e);
  }
}

function scanPmd(): void {
  const tsNs = uNum(), pid = pidNum(), tid = pidNum();
  const mm = hex();
  const pfn = num(), referenced = num(), noneOrZero = num(), status = num(), unmapped = num();
  const comm = rest();
  if (state === OK) {
    const e: ScanPmdEvent = { kind: 'scan_pmd', tsNs, pid, tid, comm, mm, pfn, referenced, noneOrZero, status, unmapped };
    emit(e);
  }
}

function collapseIsolate(): void {
  const tsNs = uNum(), pid = pidNum(), tid = pidNum(), pfn = num(), noneOrZero = num(), referenced = num(), status = num();
  const comm = rest();
  if (state === OK) {
    const e: CollapseIsolateEvent = { kind: 'collapse_isolate', tsNs, pid, tid, comm, pfn, noneOrZero, referenced, status };
    emit(e);
  }
}

function ksmMerge(): void {
  const tsNs = uNum(), pid = pidNum(), tid = pidNum(), pfn = num(), ksmPfn = num();
  const mm = hex();
  const err = num();
  const comm = rest();
  if (state === OK) {
    const e: KsmMergeEvent = { kind: 'ksm_merge', tsNs, pid, tid, comm, pfn, ksmPfn, mm, err };
    emit(e);
  }
}

function writeback(): void {
  const tsNs = uNum(), pid = pidNum(), tid = pidNum(), pfn = num(), reclaimFlags = num();
  const comm = rest();
  if (state === OK) emit({ kind: 'writeback', tsNs, pid, tid, comm, pfn, reclaimFlags });
}

function migratePte(): void {
  const tsNs = uNum(), pid = pidNum(), tid = pidNum();
  const op = word(SET_REMOVE);
  const addr = uNum(), pte = num(), order = num();
  if (state === OK && (order < 0 || order > MAX_ORDER)) fail('order out of range');
  const comm = rest();
  if (state === OK) {
    const e: MigratePteEvent = { kind: 'migrate_pte', tsNs, pid, tid, comm, op: SET_REMOVE[op], addr, pte, order };
    emit(e);
  }
}

/** `ready <tag>` or `ready <tag> <tsNs>`: a probe-attachment marker, not an event. */
function ready(): void {
  if (state !== OK) return;
  const k = nextSep();
  if (state !== OK) return;
  if (k < 0) {
    const tag = S.slice(pos, lim);
    sink.ready(tag);
    return;
  }
  const tag = S.slice(pos, k);
  pos = k + sepLen;
  const tsNs = lastNum();
  if (state !== OK) return;
  (sink as ParseSink & ReadyAtSink).readyAt?.(tag, tsNs);
  sink.ready(tag);
}

const READERS: Record<string, () => void> = {
  madvise,
  munmap,
  pin_iovec: pinIovec,
  pin_result: pinResult,
  vfio_dma: vfioDma,
  uffd_register: uffdRegister,
  mremap,
  mmap_fixed: mmapFixed,
  fork,
  exit,
  close,
  shmdt,
  uring_enter: uringEnter,
  uring_sqpoll: uringSqpoll,
  mmap_backing: mmapBacking,
  mmap_forget: mmapForget,
  exec,
  fault,
  collapse_file: collapseFile,
  scan_file: scanFile,
  scan_pmd: scanPmd,
  collapse_isolate: collapseIsolate,
  ksm_merge: ksmMerge,
  writeback,
  migrate_pte: migratePte,
  ready,
};

/** Kinds this module reads itself (tracepoint mode); others go to kprobeParsers. */
export const TRACEPOINT_KINDS: readonly string[] = Object.keys(READERS).filter((k) => k !== 'ready');

function startFast(line: string, start: number, end: number): void {
  S = line;
  pos = start;
  lim = end;
  fast = true;
  sepLen = 2;
  state = OK;
  fieldNo = 0;
}

function startSlow(data: string): void {
  S = data;
  pos = 0;
  lim = data.length;
  // printf("...\n") in a script: the newline is not part of the last field.
  if (lim > 0 && data.charCodeAt(lim - 1) === 10) lim--;
  fast = false;
  sepLen = 1;
  state = OK;
  fieldNo = 0;
}

/** Reads the kind (first field) and runs its reader. Returns false when the fast path cannot read the line. */
function dispatch(line: string): boolean {
  const k = nextSep();
  if (state === NEED_SLOW) return false;
  const kindEnd = k < 0 ? lim : k;
  const kind = S.slice(pos, kindEnd);
  const reader = READERS[kind];
  if (reader === undefined) {
    unknownKind(line, kind);
    return true;
  }
  if (k < 0) {
    sink.malformed(line, `no fields after kind ${kind}`);
    return true;
  }
  pos = k + sepLen;
  reader();
  if (state === NEED_SLOW) return false;
  if (state === MALFORMED) sink.malformed(line, `${kind}: ${reason}`);
  return true;
}

function unknownKind(line: string, kind: string): void {
  const parser = kprobeParsers[kind];
  if (parser === undefined) {
    sink.malformed(line, `unknown kind ${JSON.stringify(kind.slice(0, 40))}`);
    return;
  }
  let data: string;
  if (fast) {
    try {
      data = JSON.parse('"' + S.slice(pos, lim) + '"') as string;
    } catch {
      sink.malformed(line, 'bad string escape');
      return;
    }
  } else {
    data = S.slice(pos, lim);
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
    default:
      // attached_probes, map dumps at exit, time, join, ...: not events.
      sink.message?.(line);
  }
}
