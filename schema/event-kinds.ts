// Every event kind as one row of data: the fields its bpftrace line carries (in printf order), how the store
// indexes it, where the page timeline draws it, its colour and the sentence that describes it. The parser
// (collector/parse compiles its line readers from `fields`), the store (rows.ts: addr/len columns, the mm/pfn
// lookups of the page timeline) and the web (palette, lanes, descriptions) all read it from here.
// A new kind: its interface in events.ts (the TraceEvent union), a row here, the script, a model handler.
//
// Line: `kind tsNs pid tid <fields…> comm`, tab-separated (bpf/tracepoint/README.md); `fields` lists what is
// between tid and comm. Field types, each with how its text is read:
//   uint  decimal, 0 ≤ v < 2^53 (it becomes an INTEGER column or a user extent)
//   int   decimal, signed (-errno, -1, flags; past 2^53 it loses low bits)
//   pid   decimal, 0 ≤ v ≤ PID_MAX_LIMIT
//   ptr   0x-hex kernel pointer, kept as its text
//   bool  decimal, 0 or 1
//   word  a string without tabs (a kernel function name)
//   text  a string that may hold tabs, the field before comm (filename: comm is after the last tab)
//   [..]  one of these words (`numbered`: the script may print the word's index instead)
import type { EventBase, EventKind, TraceEvent } from './events.ts';
import { MAP_FIXED, MAP_FIXED_NOREPLACE, PAGE_SIZE, PMD_SIZE, madvName, scanResultName } from './kernel.ts';
import { addrRet, bytes, faultKind, flags, hex, ioringOp, ret, uffdModes } from './event-text.ts';

/** The page-timeline lane an event is drawn in (the web adds the pagemap and anomaly lanes). */
export type TimelineLane = 'pin' | 'mapping' | 'fault' | 'thp' | 'process';

/** Which script set prints the kind: the tracepoint set (fast-path readers), the kprobe set, or no script. */
export type ScriptSet = 'tracepoint' | 'kprobe' | 'none';

/** The event of one kind (RmapWalkEvent stands for both unmap and mkclean). */
export type EventOf<K extends EventKind> = TraceEvent extends infer E ? (E extends { kind: infer EK } ? (K extends EK ? E & { kind: K } : never) : never) : never;

/** The fields of an event other than the common ones (kind, tsNs, pid, tid, comm). */
export type PayloadKey<E> = Exclude<keyof E & string, keyof EventBase | 'kind'>;

type Scalar = 'uint' | 'int' | 'pid' | 'ptr' | 'bool' | 'word' | 'text';

/** The types a field of TypeScript type T may be read as. */
type FieldTypeOf<T> = [T] extends [boolean]
  ? 'bool'
  : [T] extends [number]
    ? 'uint' | 'int' | 'pid'
    : [string] extends [T]
      ? 'ptr' | 'word' | 'text'
      : [T] extends [string]
        ? readonly T[]
        : never;

export interface FieldOptions {
  /** Inclusive bounds checked while the line is read (beyond what the type checks). */
  min?: number;
  max?: number;
  /** The name the script's header prints for it, when not the event field's. */
  printed?: string;
  /** A word field the script prints as the word's index (0-9) — the parser also accepts the word. */
  numbered?: true;
  /** A range end the kernel may print as ULONG_MAX ("to the end of the address space", e.g. 5.10's whole-mm
   * notifier invalidations): values above ADDR_LIMIT are clamped to it instead of rejected. */
  clampToAddrLimit?: true;
}

/**
 * Bound on user addresses and extents: 2^57 covers x86-64 5-level paging (user space below 2^56; a 6.1 guest with
 * la57 shows stack GUPs at 0xffffffffffefe9) and arm64's 52-bit VAs. Above 2^53 a JS number is exact only to 8–16
 * bytes, below page granularity; such values are still integers and SQLite stores them as INTEGER.
 */
export const ADDR_LIMIT = 2 ** 57;

/** One field of the line: [event field, type, options]. */
export type Field<E> = { [P in PayloadKey<E>]-?: readonly [P, FieldTypeOf<NonNullable<E[P]>>, FieldOptions?] }[PayloadKey<E>];
export type AnyField = readonly [string, Scalar | readonly string[], FieldOptions?];

export interface KindRow<E> {
  set: ScriptSet;
  /** Another printf tag that carries the same fields (the kprobe set's line for a tracepoint-set kind). */
  kprobeTag?: string;
  /** Line fields between tid and comm, in printf order. */
  fields: readonly Field<E>[];
  /** Event fields not on its line, filled by the parser: fork's childComm (= comm), gup's pfns (gup_pfn lines). */
  filled?: readonly PayloadKey<E>[];
  /** A check across fields, after the line is read: why the event is malformed, or null. */
  check?: (e: E) => string | null;
  /** The store's `addr` column (its main user address) and `len` column (bytes from addr; absent: a point). */
  addr?: PayloadKey<E>;
  len?: PayloadKey<E> | ((e: E) => number);
  /** The page timeline finds it by the process's mm (khugepaged, KSM, notifiers run in other tasks) or by a pfn the page had. */
  byMm?: true;
  byPfn?: true;
  lane: TimelineLane;
  color: string;
  describe: (e: E) => string;
}

type Table = { [K in EventKind]: KindRow<EventOf<K>> };

const MAX_PAGES = 2 ** 36; // page counts past this have no exact byte length
const MAX_ORDER = 30;
const SOURCES = ['io_uring', 'vmsplice', 'vfio', 'iommufd', 'rdma', 'gup'] as const;
/** gup.bt's caller numbers, in order. */
export const GUP_CALLERS = ['gup', 'io_uring', 'vmsplice', 'vfio', 'iommufd', 'rdma', 'o_direct'] as const;
const OTHER = '#8b96a5';
const folioLen = (e: { order: number }) => PAGE_SIZE * 2 ** e.order;
const rangeLen = (e: { start: number; end: number }) => e.end - e.start;

export const EVENT_KIND_TABLE = {
  pin_iovec: {
    set: 'tracepoint',
    fields: [['source', SOURCES], ['fd', 'int'], ['opcode', 'int'], ['index', 'int'], ['addr', 'uint'], ['len', 'uint']],
    addr: 'addr', len: 'len', lane: 'pin', color: '#4cc38a',
    describe: (e) => `${e.source} ${e.source === 'io_uring' ? ioringOp(e.opcode) : 'iovec'} fd ${e.fd} [${e.index}] ${hex(e.addr)} len ${bytes(e.len)}`,
  },
  pin_result: {
    set: 'tracepoint',
    fields: [['source', SOURCES], ['fd', 'int'], ['opcode', 'int'], ['nr', 'int'], ['ret', 'int'], ['mm', 'ptr']],
    lane: 'pin', color: '#2f9e6e',
    describe: (e) => `${e.source} ${e.source === 'io_uring' ? ioringOp(e.opcode) : ''} fd ${e.fd} nr ${e.nr} = ${ret(e.ret)}  mm ${e.mm}`,
  },
  vfio_dma: {
    set: 'tracepoint',
    fields: [['op', ['map', 'unmap']], ['fd', 'int'], ['vaddr', 'uint'], ['iova', 'int'], ['size', 'uint'], ['flags', 'int'], ['ret', 'int']],
    addr: 'vaddr', len: 'size', lane: 'pin', color: '#39b8a8',
    describe: (e) => `VFIO_IOMMU_${String(e.op).toUpperCase()}_DMA fd ${e.fd} vaddr ${hex(e.vaddr)} iova ${hex(e.iova)} size ${bytes(e.size)} = ${ret(e.ret)}`,
  },
  madvise: {
    set: 'tracepoint',
    fields: [['addr', 'uint'], ['len', 'uint'], ['behavior', 'int'], ['ret', 'int']],
    addr: 'addr', len: 'len', lane: 'mapping', color: '#f08a3c',
    describe: (e) => `madvise(${hex(e.addr)}, ${e.len}, MADV_${madvName(e.behavior).replace(/^MADV_/, '')}) = ${ret(e.ret)}`,
  },
  munmap: {
    set: 'tracepoint',
    fields: [['addr', 'uint'], ['len', 'uint'], ['ret', 'int']],
    addr: 'addr', len: 'len', lane: 'mapping', color: '#e05577',
    describe: (e) => `munmap(${hex(e.addr)}, ${e.len}) = ${ret(e.ret)}`,
  },
  mremap: {
    set: 'tracepoint',
    fields: [['addr', 'uint'], ['oldLen', 'uint'], ['newLen', 'uint'], ['flags', 'int'], ['newAddrArg', 'int'], ['ret', 'int']],
    addr: 'addr', len: 'oldLen', lane: 'mapping', color: '#d6d36a',
    describe: (e) => `mremap(${hex(e.addr)}, ${e.oldLen}, ${e.newLen}, ${flags(e.flags)}${e.newAddrArg ? `, ${hex(e.newAddrArg)}` : ''}) = ${addrRet(e.ret)}`,
  },
  mmap_fixed: {
    set: 'tracepoint',
    fields: [['addr', 'uint'], ['len', 'uint'], ['prot', 'int'], ['flags', 'int'], ['fd', 'int'], ['ret', 'int']],
    addr: 'addr', len: 'len', lane: 'mapping', color: '#9ad66e',
    describe: (e) => {
      const fixed = e.flags & MAP_FIXED_NOREPLACE ? 'MAP_FIXED_NOREPLACE' : e.flags & MAP_FIXED ? 'MAP_FIXED' : '';
      return `mmap(${hex(e.addr)}, ${e.len}, prot ${flags(e.prot)}, flags ${flags(e.flags)} ${fixed}, fd ${e.fd}) = ${addrRet(e.ret)}`;
    },
  },
  fork: {
    set: 'tracepoint',
    fields: [['childPid', 'pid'], ['cloneFlags', 'int']],
    filled: ['childComm'],
    lane: 'process', color: '#b07cf0',
    describe: (e) => `fork → child ${e.childPid} (${e.childComm})${e.cloneFlags >= 0 ? ` clone flags ${flags(e.cloneFlags)}` : ''}`,
  },
  exit: { set: 'tracepoint', fields: [], lane: 'process', color: '#6c7fd0', describe: () => 'process exit (thread group leader)' },
  uffd_register: {
    set: 'tracepoint',
    fields: [['op', ['register', 'unregister']], ['fd', 'int'], ['addr', 'uint'], ['len', 'uint'], ['mode', 'int'], ['ret', 'int']],
    addr: 'addr', len: 'len', lane: 'mapping', color: '#c8a2ff',
    describe: (e) =>
      `UFFDIO_${String(e.op).toUpperCase()} fd ${e.fd} ${hex(e.addr)} len ${bytes(e.len)}${e.op === 'register' ? ` mode ${uffdModes(e.mode)}` : ''} = ${ret(e.ret)}`,
  },
  fault: {
    set: 'tracepoint',
    fields: [['addr', 'uint'], ['errorCode', 'int'], ['ip', 'int']],
    addr: 'addr', lane: 'fault', color: '#5fb3ff',
    describe: (e) => `${faultKind(e.errorCode)} at ${hex(e.addr)} (error_code ${flags(e.errorCode)}, ip ${hex(e.ip)})`,
  },
  collapse_file: {
    set: 'tracepoint',
    kprobeTag: 'kcollapse_file',
    fields: [
      ['mm', 'ptr'], ['hpfn', 'int'], ['index', 'int'], ['addr', 'uint'], ['isShmem', 'bool'],
      ['nr', 'int', { min: -1, max: MAX_PAGES }], ['result', 'int'], ['filename', 'text'],
    ],
    addr: 'addr', len: (e) => (e.nr > 0 ? e.nr * PAGE_SIZE : PMD_SIZE), byMm: true, lane: 'thp', color: '#e5b33d',
    describe: (e) =>
      `collapse_file ${e.isShmem ? 'shmem' : 'file'} ${e.filename || ''} addr ${hex(e.addr)} index ${e.index} nr ${e.nr} → ${scanResultName(e.result)} (hpfn ${hex(e.hpfn)})`,
  },
  scan_file: {
    set: 'tracepoint',
    fields: [['mm', 'ptr'], ['pfn', 'int'], ['present', 'int'], ['swap', 'int'], ['result', 'int'], ['filename', 'text']],
    byMm: true, byPfn: true, lane: 'thp', color: '#c9a040',
    describe: (e) => `khugepaged scan_file ${e.filename || ''} pfn ${hex(e.pfn)} present ${e.present} swap ${e.swap} → ${scanResultName(e.result)}`,
  },
  scan_pmd: {
    set: 'tracepoint',
    fields: [['mm', 'ptr'], ['pfn', 'int'], ['referenced', 'int'], ['noneOrZero', 'int'], ['status', 'int'], ['unmapped', 'int']],
    byMm: true, byPfn: true, lane: 'thp', color: '#c49a6c',
    describe: (e) =>
      `khugepaged scan_pmd pfn ${hex(e.pfn)} referenced ${e.referenced} none_or_zero ${e.noneOrZero} unmapped ${e.unmapped} → ${scanResultName(e.status)}`,
  },
  collapse_isolate: {
    set: 'tracepoint',
    fields: [['pfn', 'int'], ['noneOrZero', 'int'], ['referenced', 'int'], ['status', 'int']],
    byPfn: true, lane: 'thp', color: '#a88a40',
    describe: (e) => `collapse_huge_page_isolate pfn ${hex(e.pfn)} → ${scanResultName(e.status)}`,
  },
  ksm_merge: {
    set: 'tracepoint',
    fields: [['pfn', 'int'], ['ksmPfn', 'int'], ['mm', 'ptr'], ['err', 'int']],
    byMm: true, byPfn: true, lane: 'thp', color: '#ff7eb6',
    describe: (e) => `KSM merge pfn ${hex(e.pfn)} into ${hex(e.ksmPfn)} err ${e.err}`,
  },
  writeback: {
    set: 'tracepoint',
    fields: [['pfn', 'int'], ['reclaimFlags', 'int']],
    byPfn: true, lane: 'thp', color: '#9aa7b8',
    describe: (e) => `reclaim writes out pfn ${hex(e.pfn)} (flags ${flags(e.reclaimFlags)})`,
  },
  migrate_pte: {
    set: 'tracepoint',
    fields: [['op', ['set', 'remove']], ['addr', 'uint'], ['pte', 'int'], ['order', 'int', { min: 0, max: MAX_ORDER }]],
    addr: 'addr', len: folioLen, lane: 'mapping', color: '#7ad0e6',
    describe: (e) => `${e.op === 'set' ? 'set' : 'remove'}_migration_pte ${hex(e.addr)} order ${e.order}`,
  },
  close: { set: 'tracepoint', fields: [['fd', 'int']], lane: 'process', color: '#6c7888', describe: (e) => `close(${e.fd})` },
  shmdt: {
    set: 'tracepoint',
    fields: [['addr', 'uint'], ['len', 'uint'], ['ret', 'int']],
    lane: 'process', color: OTHER,
    describe: (e) => `shmdt(${hex(e.addr)}) = ${ret(e.ret)}  segment ${e.len ? bytes(e.len) : 'size unknown'}`,
  },
  uring_enter: {
    set: 'tracepoint',
    fields: [['fd', 'int'], ['toSubmit', 'int'], ['flags', 'int']],
    lane: 'process', color: OTHER,
    describe: (e) => `io_uring_enter fd ${e.fd} to_submit ${e.toSubmit} flags ${flags(e.flags)} (first submission since a zap)`,
  },
  uring_sqpoll: {
    set: 'tracepoint', fields: [['fd', 'int']], lane: 'process', color: OTHER,
    describe: (e) => `io_uring_setup fd ${e.fd} with IORING_SETUP_SQPOLL (submits without io_uring_enter)`,
  },
  mmap_backing: {
    set: 'tracepoint',
    fields: [['addr', 'uint'], ['len', 'uint'], ['flags', 'int'], ['magic', 'int'], ['name', 'text']],
    lane: 'process', color: OTHER,
    describe: (e) => `mmap ${hex(e.addr)} len ${bytes(e.len)} flags ${flags(e.flags)} backed by ${e.name || 'anonymous hugetlb'} (fs magic ${flags(e.magic)})`,
  },
  mmap_forget: { set: 'tracepoint', fields: [], lane: 'process', color: OTHER, describe: () => 'process exit: its mmap backings are forgotten' },
  exec: { set: 'tracepoint', fields: [], lane: 'process', color: OTHER, describe: (e) => `execve: the address space is replaced (now ${e.comm})` },
  gup: {
    set: 'kprobe',
    fields: [
      ['fn', 'word'], ['addr', 'uint'], ['nrPages', 'uint', { max: MAX_PAGES }], ['gupFlags', 'int'], ['ret', 'int'],
      ['source', GUP_CALLERS, { printed: 'caller', numbered: true }],
    ],
    filled: ['pfns'],
    addr: 'addr', len: (e) => e.nrPages * PAGE_SIZE, lane: 'pin', color: '#4cc38a',
    describe: (e) => {
      const pfns = Array.isArray(e.pfns) ? e.pfns : []; // a stored row from an older file may lack them
      return `${e.fn}(${hex(e.addr)}, ${e.nrPages} pages, gup_flags ${flags(e.gupFlags)}) = ${ret(e.ret)}${pfns.length ? `  pfns ${pfns.slice(0, 4).map(hex).join(' ')}${pfns.length > 4 ? ' …' : ''}` : ''}`;
    },
  },
  unpin: {
    set: 'kprobe',
    fields: [['fn', 'word'], ['pfn', 'int'], ['npages', 'int']],
    byPfn: true, lane: 'pin', color: '#3f8f6a',
    describe: (e) => `${e.fn} pfn ${hex(e.pfn)} npages ${e.npages}`,
  },
  wp_page: {
    set: 'kprobe',
    fields: [['addr', 'uint'], ['outcome', ['copy', 'reuse', 'unshare']], ['oldPfn', 'int'], ['newPfn', 'int']],
    addr: 'addr', lane: 'fault', color: '#ff5566',
    describe: (e) => `do_wp_page ${e.outcome} at ${hex(e.addr)}: pfn ${hex(e.oldPfn)}${e.outcome === 'copy' || e.outcome === 'unshare' ? ` → ${hex(e.newPfn)}` : ''}`,
  },
  unmap: {
    set: 'kprobe',
    fields: [['pfn', 'int'], ['mm', 'ptr'], ['addr', 'uint']],
    addr: 'addr', byPfn: true, lane: 'thp', color: '#ff8f66',
    describe: (e) => `try_to_unmap_one pfn ${hex(e.pfn)} at ${hex(e.addr)} mm ${e.mm}`,
  },
  mkclean: {
    set: 'kprobe',
    fields: [['pfn', 'int'], ['mm', 'ptr'], ['addr', 'uint']],
    addr: 'addr', byPfn: true, lane: 'thp', color: '#e6c86c',
    describe: (e) => `page_mkclean_one pfn ${hex(e.pfn)} at ${hex(e.addr)} mm ${e.mm}`,
  },
  split_pmd: {
    set: 'kprobe',
    fields: [['mm', 'ptr'], ['addr', 'uint']],
    addr: 'addr', len: () => PMD_SIZE, byMm: true, lane: 'mapping', color: '#d0b050',
    describe: (e) => `split_huge_pmd ${hex(e.addr)} mm ${e.mm}`,
  },
  mmu_invalidate: {
    set: 'kprobe',
    fields: [['mm', 'ptr'], ['start', 'uint'], ['end', 'uint', { clampToAddrLimit: true }], ['event', 'int']],
    addr: 'start', len: rangeLen, byMm: true, lane: 'mapping', color: '#70a0ff',
    describe: (e) => `mmu_notifier invalidate ${hex(e.start)}–${hex(e.end)} event ${e.event} mm ${e.mm}`,
  },
  mmu_invalidate_end: {
    set: 'kprobe',
    fields: [['mm', 'ptr'], ['start', 'uint'], ['end', 'uint', { clampToAddrLimit: true }], ['event', 'int'], ['startTsNs', 'int']],
    addr: 'start', len: rangeLen, lane: 'mapping', color: '#5080d0',
    describe: (e) => `mmu_notifier invalidate end ${hex(e.start)}–${hex(e.end)} event ${e.event} mm ${e.mm}${e.startTsNs > 0 ? '' : ' (start not seen)'}`,
  },
  copy_page_range: {
    set: 'kprobe',
    fields: [['mm', 'ptr'], ['childMm', 'ptr'], ['start', 'uint'], ['end', 'uint'], ['vmFlags', 'int'], ['anon', 'bool']],
    check: (e) => (e.end <= e.start ? `empty range ${e.start}..${e.end}` : null),
    addr: 'start', len: rangeLen, lane: 'process', color: '#9060d0',
    describe: (e) => `fork: copy_page_range ${hex(e.start)}–${hex(e.end)} (${e.anon ? 'anon' : 'private file'}, vm_flags ${flags(e.vmFlags)}) into child mm ${e.childMm}`,
  },
  anon_rmap_move: {
    set: 'kprobe',
    fields: [['pfn', 'int'], ['addr', 'uint'], ['order', 'int', { min: 0, max: MAX_ORDER }]],
    addr: 'addr', len: folioLen, byPfn: true, lane: 'thp', color: '#a0c0ff',
    describe: (e) => `folio_move_anon_rmap pfn ${hex(e.pfn)} at ${hex(e.addr)} order ${e.order}`,
  },
  lost: {
    set: 'none',
    fields: [['count', 'uint']],
    lane: 'process', color: '#ff3344',
    describe: (e) => `${e.count} events lost (perf buffer full): verdicts here may miss context`,
  },
} as const satisfies Table;

// Compile-time check: every payload field of every kind is on its line or filled by the parser.
type Listed<K extends EventKind> = (typeof EVENT_KIND_TABLE)[K] extends { fields: readonly (infer F)[] } ? (F extends readonly [infer N, ...unknown[]] ? N : never) : never;
type Filled<K extends EventKind> = (typeof EVENT_KIND_TABLE)[K] extends { filled: readonly (infer N)[] } ? N : never;
type Unlisted = { [K in EventKind]: Exclude<PayloadKey<EventOf<K>>, Listed<K> | Filled<K>> extends never ? never : K }[EventKind];
const everyFieldListed: [Unlisted] extends [never] ? true : Unlisted = true;
void everyFieldListed;

/** A row seen without its kind's precise type (the parser, the store and the web iterate rows). */
export interface AnyKindRow {
  set: ScriptSet;
  kprobeTag?: string;
  fields: readonly AnyField[];
  filled?: readonly string[];
  check?: (e: never) => string | null;
  addr?: string;
  len?: string | ((e: never) => number);
  byMm?: true;
  byPfn?: true;
  lane: TimelineLane;
  color: string;
  describe: (e: never) => string;
}

export const EVENT_KINDS = Object.keys(EVENT_KIND_TABLE) as readonly EventKind[];

export function kindRow(kind: EventKind): AnyKindRow {
  return EVENT_KIND_TABLE[kind] as AnyKindRow;
}

export function isEventKind(kind: string): kind is EventKind {
  return Object.prototype.hasOwnProperty.call(EVENT_KIND_TABLE, kind);
}

/** Kinds the page timeline looks up by the process's mm / by a pfn the page had (store queries). */
export const MM_KINDS: readonly EventKind[] = EVENT_KINDS.filter((k) => kindRow(k).byMm);
export const PFN_KINDS: readonly EventKind[] = EVENT_KINDS.filter((k) => kindRow(k).byPfn);

/** Lines that are not events: parts of one (gup_pfn: one per page, attached to the gup line that follows). */
export const PART_LINES: Readonly<Record<string, { of: EventKind; fields: readonly string[] }>> = {
  gup_pfn: { of: 'gup', fields: ['index', 'pfn', 'count'] },
};
