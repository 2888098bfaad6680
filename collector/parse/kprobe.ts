// Parsers for the kprobe-mode line kinds (bpf/kprobe/*.bt), looked up by parseLine when a printf
// line's first field is not a tracepoint-mode kind.
//
// Contract: `fields` are the line's tab-separated fields, already unescaped, kind first
// (fields[0] === the key), comm last. The data is split on every tab: a parser whose comm may contain
// tabs re-joins the tail itself. A parser calls sink.event() with one schema event, or
// sink.malformed(line, reason); it must not throw.
//
// One exception to "one event per line": `gup_pfn` lines (one per page a GUP call returned) are
// continuation lines. They are buffered per thread and attached to the `gup` line that follows them
// from the same return probe (same CPU, so in order), which is the one that emits the GupEvent.
//
// Line formats (tsNs pid tid first, comm last; documented with examples in each script's header):
//   gup_pfn         index pfn count                 (count consecutive pfns from pfn; 1 for GUP arrays)
//   gup             fn addr nrPages gupFlags ret caller
//   unpin           fn pfn npages
//   wp_page         addr outcome oldPfn newPfn
//   unmap|mkclean   pfn mm addr
//   split_pmd       mm addr
//   mmu_invalidate  mm start end event
//   mmu_invalidate_end  mm start end event startTsNs
//   copy_page_range mm childMm start end vmFlags anon
//   anon_rmap_move  pfn addr order
//   kcollapse_file  mm hpfn index addr isShmem nr result filename   -> a collapse_file event
import type { ParseSink } from '../contracts.ts';
import { ADDR_LIMIT, eventRangeProblem } from './ranges.ts';
import type { PinSource, TraceEvent, WpPageEvent } from '../../schema/events.ts';

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

/** A range end; the kernel passes ULONG_MAX for "to the end of the address space" (e.g. 5.10's whole-mm
 * notifier invalidations), which is clamped to ADDR_LIMIT rather than rejected. */
function rangeEnd(fields: string[], i: number): number {
  const n = int(fields, i, 'end');
  return n > ADDR_LIMIT ? ADDR_LIMIT : n;
}

function ptr(fields: string[], i: number, what: string): string {
  const s = fields[i];
  if (s === undefined || !/^0x[0-9a-f]+$/.test(s)) throw new Bad(`${what} not a hex pointer`);
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
      if (err instanceof Bad) { sink.malformed(line, `${kind}: ${err.message}`); return; }
      sink.malformed(line, `${kind}: ${(err as Error).message}`);
      return;
    }
    if (!e) return;
    const bad = eventRangeProblem(e);
    if (bad !== null) sink.malformed(line, `${kind}: ${bad}`);
    else sink.event(e);
  };
}

const SOURCES: ReadonlySet<string> = new Set<PinSource>(['io_uring', 'vfio', 'iommufd', 'vmsplice', 'rdma', 'o_direct', 'gup']);
/** gup.bt's caller numbers (@caller[tid] values), in order. */
export const GUP_CALLERS: readonly PinSource[] = ['gup', 'io_uring', 'vmsplice', 'vfio', 'iommufd', 'rdma', 'o_direct'];
const OUTCOMES: ReadonlySet<string> = new Set(['copy', 'reuse', 'unshare']);
/** Upper bound on pages per GUP call buffered from gup_pfn lines (the script caps at PW_MAX_PFNS). */
const MAX_BUFFERED_PFNS = 1 << 16;

/** pfns of the GUP return in progress, per tid. */
const pendingPfns = new Map<number, number[]>();

/** Forget buffered gup_pfn lines (a new stream, tests). */
export function resetKprobeParserState(): void {
  pendingPfns.clear();
}

export const kprobeParsers: Record<string, Parser> = {
  gup_pfn: guard('gup_pfn', (f) => {
    const tid = int(f, 3, 'tid');
    const index = int(f, 4, 'index');
    const pfn = int(f, 5, 'pfn');
    const count = int(f, 6, 'count');
    commFrom(f, 7);
    if (index < 0 || count < 1 || index + count > MAX_BUFFERED_PFNS) throw new Bad(`bad index/count ${index}/${count}`);
    let list = pendingPfns.get(tid);
    if (!list || index === 0) { list = []; pendingPfns.set(tid, list); }
    for (let i = 0; i < count; i++) list[index + i] = pfn + i;
    return null;
  }),

  gup: guard('gup', (f) => {
    const tid = int(f, 3, 'tid');
    // bpf/kprobe/gup.bt prints the caller's number; a name is accepted too (older recordings, fixtures)
    const caller = /^\d$/.test(f[9]) ? GUP_CALLERS[Number(f[9])] : f[9];
    if (caller === undefined || !SOURCES.has(caller)) throw new Bad(`unknown caller ${JSON.stringify(f[9])}`);
    const ret = int(f, 8, 'ret');
    const buffered = pendingPfns.get(tid);
    pendingPfns.delete(tid);
    // holes (a lost gup_pfn line) are dropped rather than reported as pfn 0
    const pfns = buffered ? buffered.filter((p) => p !== undefined) : [];
    return {
      kind: 'gup', tsNs: int(f, 1, 'tsNs'), pid: int(f, 2, 'pid'), tid, comm: commFrom(f, 10),
      fn: f[4], addr: int(f, 5, 'addr'), nrPages: int(f, 6, 'nrPages'), gupFlags: int(f, 7, 'gupFlags'), ret,
      pfns: ret > 0 ? pfns.slice(0, ret) : [], source: caller as PinSource,
    };
  }),

  unpin: guard('unpin', (f) => ({
    kind: 'unpin', tsNs: int(f, 1, 'tsNs'), pid: int(f, 2, 'pid'), tid: int(f, 3, 'tid'), comm: commFrom(f, 7),
    fn: f[4], pfn: int(f, 5, 'pfn'), npages: int(f, 6, 'npages'),
  })),

  wp_page: guard('wp_page', (f) => {
    const outcome = f[5];
    if (!OUTCOMES.has(outcome)) throw new Bad(`unknown outcome ${JSON.stringify(outcome)}`);
    return {
      kind: 'wp_page', tsNs: int(f, 1, 'tsNs'), pid: int(f, 2, 'pid'), tid: int(f, 3, 'tid'), comm: commFrom(f, 8),
      addr: int(f, 4, 'addr'), outcome: outcome as WpPageEvent['outcome'], oldPfn: int(f, 6, 'oldPfn'), newPfn: int(f, 7, 'newPfn'),
    };
  }),

  unmap: guard('unmap', (f) => ({
    kind: 'unmap', tsNs: int(f, 1, 'tsNs'), pid: int(f, 2, 'pid'), tid: int(f, 3, 'tid'), comm: commFrom(f, 7),
    pfn: int(f, 4, 'pfn'), mm: ptr(f, 5, 'mm'), addr: int(f, 6, 'addr'),
  })),

  mkclean: guard('mkclean', (f) => ({
    kind: 'mkclean', tsNs: int(f, 1, 'tsNs'), pid: int(f, 2, 'pid'), tid: int(f, 3, 'tid'), comm: commFrom(f, 7),
    pfn: int(f, 4, 'pfn'), mm: ptr(f, 5, 'mm'), addr: int(f, 6, 'addr'),
  })),

  split_pmd: guard('split_pmd', (f) => ({
    kind: 'split_pmd', tsNs: int(f, 1, 'tsNs'), pid: int(f, 2, 'pid'), tid: int(f, 3, 'tid'), comm: commFrom(f, 6),
    mm: ptr(f, 4, 'mm'), addr: int(f, 5, 'addr'),
  })),

  mmu_invalidate: guard('mmu_invalidate', (f) => ({
    kind: 'mmu_invalidate', tsNs: int(f, 1, 'tsNs'), pid: int(f, 2, 'pid'), tid: int(f, 3, 'tid'), comm: commFrom(f, 8),
    mm: ptr(f, 4, 'mm'), start: int(f, 5, 'start'), end: rangeEnd(f, 6), event: int(f, 7, 'event'),
  })),

  mmu_invalidate_end: guard('mmu_invalidate_end', (f) => ({
    kind: 'mmu_invalidate_end', tsNs: int(f, 1, 'tsNs'), pid: int(f, 2, 'pid'), tid: int(f, 3, 'tid'), comm: commFrom(f, 9),
    mm: ptr(f, 4, 'mm'), start: int(f, 5, 'start'), end: rangeEnd(f, 6), event: int(f, 7, 'event'), startTsNs: int(f, 8, 'startTsNs'),
  })),

  copy_page_range: guard('copy_page_range', (f) => {
    const start = int(f, 6, 'start');
    const end = int(f, 7, 'end');
    if (end <= start) throw new Bad(`empty range ${start}..${end}`);
    return {
      kind: 'copy_page_range', tsNs: int(f, 1, 'tsNs'), pid: int(f, 2, 'pid'), tid: int(f, 3, 'tid'), comm: commFrom(f, 10),
      mm: ptr(f, 4, 'mm'), childMm: ptr(f, 5, 'childMm'), start, end, vmFlags: int(f, 8, 'vmFlags'), anon: int(f, 9, 'anon') === 1,
    };
  }),

  anon_rmap_move: guard('anon_rmap_move', (f) => ({
    kind: 'anon_rmap_move', tsNs: int(f, 1, 'tsNs'), pid: int(f, 2, 'pid'), tid: int(f, 3, 'tid'), comm: commFrom(f, 7),
    pfn: int(f, 4, 'pfn'), addr: int(f, 5, 'addr'), order: int(f, 6, 'order'),
  })),

  kcollapse_file: guard('kcollapse_file', (f) => {
    if (f.length < 13) throw new Bad('missing fields');
    return {
      kind: 'collapse_file', tsNs: int(f, 1, 'tsNs'), pid: int(f, 2, 'pid'), tid: int(f, 3, 'tid'), comm: commFrom(f, 12),
      mm: ptr(f, 4, 'mm'), hpfn: int(f, 5, 'hpfn'), index: int(f, 6, 'index'), addr: int(f, 7, 'addr'),
      isShmem: int(f, 8, 'isShmem') === 1, nr: int(f, 9, 'nr'), result: int(f, 10, 'result'), filename: f[11],
    };
  }),
};
