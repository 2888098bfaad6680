// "Page, where are you": everything stored that touched one page of a process — events whose range covers it,
// the process's fork/exit and khugepaged events, events on its mm or naming a pfn the page had, the result of a
// covering pinning call, pagemap reads — and the pinned pages worth offering for it.
import type { PagemapRead } from '../../schema/anomalies.ts';
import type { SequencedEvent } from '../../schema/events.ts';
import { PAGE_SIZE } from '../../schema/kernel.ts';
import { pinPageAddr, pinPageIndex } from '../../schema/pin-runs.ts';
import type { StoredEvent, StoredPagemapRead, TimelineMatch, TimelinePageRef } from '../../schema/stored.ts';
import { META_MAX_LEN } from './meta.ts';
import { readPage, type PinRunRow } from './page-runs.ts';
import { eventFromRow, MM_KINDS, PFN_KINDS, pagemapReadFromRow, storedEventFromRow, type EventRow, type PagemapRow } from './rows.ts';
import type { Statements } from './statements.ts';

export type { TimelineMatch };

export type TimelineEntry =
  | { type: 'event'; tsNs: number; match: TimelineMatch; event: SequencedEvent }
  | { type: 'pagemap'; tsNs: number; read: PagemapRead; reason: string };

/** Index granularity of events by address (schema/tables.ts: events_pid_gib). */
const GIB = 2 ** 30;
const PROCESS_KINDS = ['fork', 'exit'];
const COLLAPSE_KINDS = ['collapse_file', 'scan_file', 'scan_pmd', 'collapse_isolate'];

function sqlList(values: readonly string[]): string {
  return values.map((v) => `'${v}'`).join(',');
}

export function pageOf(addr: number): number {
  return addr - (addr % PAGE_SIZE);
}

/** Pagemap reads of one page of a process, in time order. */
export function pagemapReadsOfPage(q: Statements, pid: number, addr: number): { read: PagemapRead; reason: string }[] {
  const rows = q.get(`SELECT * FROM pagemap_reads WHERE pid = ? AND addr = ? ORDER BY ts_ns, id`).all(pid, pageOf(addr)) as PagemapRow[];
  return rows.map((r) => ({ read: pagemapReadFromRow(r), reason: r.reason }));
}

/** The largest events.len (re-read each call: a live writer may have raised it). */
function maxLen(q: Statements): number {
  const r = q.get(`SELECT value FROM meta WHERE key = ?`).get(META_MAX_LEN) as { value: string } | undefined;
  if (r) return Number(r.value);
  // A file with events but no row was written by an older store: bound unknown.
  return q.get(`SELECT 1 FROM events LIMIT 1`).get() !== undefined ? Number.MAX_SAFE_INTEGER : 0;
}

interface PageTouches {
  events: { match: TimelineMatch; row: EventRow }[];
  reads: { read: PagemapRead; reason: string }[];
}

/** The rows behind a page timeline: each event once, with the first reason it was found for. */
function pageTouches(q: Statements, pid: number, addr: number): PageTouches {
  const page = pageOf(addr);
  const pageEnd = page + PAGE_SIZE;
  const byseq = new Map<number, { match: TimelineMatch; row: EventRow }>();
  const add = (rows: EventRow[], match: TimelineMatch) => {
    for (const r of rows) if (!byseq.has(r.seq)) byseq.set(r.seq, { match, row: r });
  };

  // An event covering the page starts at most max(len) bytes below it: a bounded range scan of the index on
  // (pid, addr >> 30) (or of (pid, addr) in files written before it).
  const lowest = Math.max(0, page - maxLen(q));
  add(
    q.get(
      `SELECT * FROM events WHERE pid = ? AND (addr >> 30) BETWEEN ? AND ? AND addr >= ? AND addr < ? ` +
        `AND addr + coalesce(len, 1) > ? AND kind != 'mremap'`,
    ).all(pid, Math.floor(lowest / GIB), Math.floor((pageEnd - 1) / GIB), lowest, pageEnd, page) as EventRow[],
    'range',
  );
  // mremap covers its old range (addr/len columns) and its new one (ret, newLen in the payload).
  for (const r of q.get(`SELECT * FROM events WHERE pid = ? AND kind = 'mremap'`).all(pid) as EventRow[]) {
    const p = JSON.parse(r.payload) as { oldLen: number; newLen: number; ret: number };
    const oldHit = r.addr !== null && r.addr < pageEnd && r.addr + p.oldLen > page;
    const newHit = p.ret > 0 && p.ret < pageEnd && p.ret + p.newLen > page;
    if (oldHit || newHit) add([r], 'range');
  }
  add(q.get(`SELECT * FROM events WHERE pid = ? AND kind IN (${sqlList(PROCESS_KINDS)})`).all(pid) as EventRow[], 'process');
  add(q.get(`SELECT * FROM events WHERE pid = ? AND kind IN (${sqlList(COLLAPSE_KINDS)})`).all(pid) as EventRow[], 'process');

  // The process's mm pointers (pin_result carries them) find khugepaged/KSM events run by other threads.
  const mms = (q.get(`SELECT DISTINCT json_extract(payload, '$.mm') AS mm FROM events WHERE pid = ? AND kind = 'pin_result'`).all(pid) as { mm: string | null }[])
    .map((r) => r.mm)
    .filter((m): m is string => typeof m === 'string' && m !== '' && m !== '0x0' && m !== '0');
  if (mms.length) {
    const rows = q.db
      .prepare(`SELECT * FROM events WHERE kind IN (${sqlList(MM_KINDS)}) AND json_extract(payload, '$.mm') IN (${mms.map(() => '?').join(',')})`)
      .all(...mms) as EventRow[];
    add(rows, 'mm');
  }

  // The pin_result that answered each covering pin_iovec (same thread, next result).
  for (const { row } of [...byseq.values()]) {
    if (row.kind !== 'pin_iovec') continue;
    const res = q.get(`SELECT * FROM events WHERE pid = ? AND tid = ? AND kind = 'pin_result' AND seq > ? ORDER BY seq LIMIT 1`).get(
      pid, row.tid, row.seq,
    ) as EventRow | undefined;
    if (res) add([res], 'result');
  }

  const reads = pagemapReadsOfPage(q, pid, page);
  // pfns this page had: pagemap, the pin table, wp_page old/new, gup's per-page pfns.
  const pfns = new Set<number>();
  for (const { read } of reads) if (read.pfn !== null && read.pfn > 0) pfns.add(read.pfn);
  for (const p of q.get(`SELECT id, addr FROM pins WHERE pid = ? AND addr < ? AND addr + len > ?`).all(pid, page + PAGE_SIZE, page) as { id: number; addr: number }[]) {
    const pg = readPage(q, p.id, pinPageIndex(p.addr, page));
    if (pg?.pinnedPfn) pfns.add(pg.pinnedPfn);
    if (pg?.currentPfn) pfns.add(pg.currentPfn);
  }
  for (const { row } of byseq.values()) {
    if (row.kind === 'wp_page') {
      const p = JSON.parse(row.payload) as { oldPfn?: number; newPfn?: number };
      if (p.oldPfn) pfns.add(p.oldPfn);
      if (p.newPfn) pfns.add(p.newPfn);
    } else if (row.kind === 'gup' && row.addr !== null) {
      const p = JSON.parse(row.payload) as { pfns?: number[] };
      const idx = Math.floor((page - pageOf(row.addr)) / PAGE_SIZE);
      const pfn = p.pfns?.[idx];
      if (pfn) pfns.add(pfn);
    }
  }
  if (pfns.size) {
    const list = [...pfns];
    const rows: EventRow[] = [];
    for (let i = 0; i < list.length; i += 500) {
      const part = list.slice(i, i + 500);
      const marks = part.map(() => '?').join(',');
      rows.push(
        ...(q.db
          .prepare(
            `SELECT * FROM events WHERE kind IN (${sqlList(PFN_KINDS)}) AND (json_extract(payload, '$.pfn') IN (${marks})
               OR json_extract(payload, '$.ksmPfn') IN (${marks}))`,
          )
          .all(...part, ...part) as EventRow[]),
      );
    }
    add(rows, 'pfn');
  }
  return { events: [...byseq.values()], reads };
}

function orderKey(e: TimelineEntry): number {
  return e.type === 'event' ? e.event.seq : Number.MAX_SAFE_INTEGER;
}

/** Everything that touched one page of a process, in time order (pagemap reads after events of the same ts). */
export function pageTimeline(q: Statements, pid: number, addr: number): TimelineEntry[] {
  const { events, reads } = pageTouches(q, pid, addr);
  const out: TimelineEntry[] = [];
  for (const { match, row } of events) out.push({ type: 'event', tsNs: row.ts_ns, match, event: eventFromRow(row) });
  for (const { read, reason } of reads) out.push({ type: 'pagemap', tsNs: read.tsNs, read, reason });
  out.sort((a, b) => a.tsNs - b.tsNs || orderKey(a) - orderKey(b));
  return out;
}

/**
 * The page's events as stored (each with why it is on the timeline), lost-event marks inside the window the
 * page's activity spans (`also`: further timestamps of that window, e.g. its pins), and its pagemap reads.
 */
export function pageEvents(q: Statements, pid: number, addr: number, also: { lo: number[]; hi: number[] }): { events: StoredEvent[]; reads: StoredPagemapRead[] } {
  const touches = pageTouches(q, pid, addr);
  const events = touches.events.map(({ match, row }) => storedEventFromRow(row, match));
  // Numbered in time order (the query's order), as the dashboard lists them.
  const reads = touches.reads.map(({ read, reason }, i): StoredPagemapRead => ({ ...read, id: i + 1, reason }));
  // Lost-event marks inside the page's window: the timeline may be missing something there.
  const times = events.map((e) => e.tsNs).concat(reads.map((r) => r.tsNs), also.lo);
  if (times.length) {
    const lo = Math.min(...times);
    const hi = Math.max(...times, ...also.hi);
    const seen = new Set(events.map((e) => e.seq));
    for (const r of q.get(`SELECT * FROM events WHERE kind = 'lost' AND ts_ns BETWEEN ? AND ? LIMIT 200`).all(lo, hi) as EventRow[]) {
      if (!seen.has(r.seq)) events.push(storedEventFromRow(r, 'lost'));
    }
  }
  events.sort((a, b) => a.tsNs - b.tsNs || a.seq - b.seq);
  return { events, reads };
}

/** Index of the first element of sorted `a` that is >= x. */
function lowerBound(a: readonly number[], x: number): number {
  let lo = 0;
  let hi = a.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (a[mid] < x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * Pinned pages to offer on the timeline page: those with anomalies first, then diverged ones, newest pins first.
 * Counted in one pass over anomalies grouped by (pid, addr, len) and one over the runs (newest pin first, page
 * order): a run yields its pages with anomalies, and pages while fewer than `limit` of its kind (moved or not)
 * were taken — a 16M-page run costs at most `limit` pages, never 16M. (A correlated subquery per page was
 * quadratic: minutes on a recording with 16k anomalies, with the collector's loop blocked.)
 */
export function pinnedPages(q: Statements, limit: number): TimelinePageRef[] {
  const perPage = new Map<string, number>();
  const anomalyAddrs = new Map<number, number[]>();
  for (const g of q.get('SELECT pid, addr, max(len, 1) AS len, count(*) AS n FROM anomalies GROUP BY pid, addr, len').iterate() as Iterable<{
    pid: number;
    addr: number;
    len: number;
    n: number;
  }>) {
    const pages = Math.min(Math.ceil(g.len / PAGE_SIZE), 4096);
    for (let i = 0; i < pages; i++) {
      const addr = g.addr + i * PAGE_SIZE;
      const key = `${g.pid}:${addr}`;
      const before = perPage.get(key);
      perPage.set(key, (before ?? 0) + g.n);
      if (before === undefined) {
        let list = anomalyAddrs.get(g.pid);
        if (!list) anomalyAddrs.set(g.pid, (list = []));
        list.push(addr);
      }
    }
  }
  for (const list of anomalyAddrs.values()) list.sort((a, b) => a - b);
  const out: TimelinePageRef[] = [];
  const taken = { moved: 0, rest: 0 };
  type Row = PinRunRow & { pid: number; comm: string; pin_addr: number };
  for (const r of q.get(
    `SELECT r.*, p.pid, p.comm, p.addr AS pin_addr FROM pin_page_runs r JOIN pins p ON p.id = r.pin_id ORDER BY p.id DESC, r.page`,
  ).iterate() as Iterable<Row>) {
    const first = pinPageAddr(r.pin_addr, r.page);
    const end = first + r.count * PAGE_SIZE;
    const add = (addr: number, anomalies: number) => {
      const k = (addr - first) / PAGE_SIZE;
      out.push({
        pid: r.pid, comm: r.comm, addr, pinId: r.pin_id, anomalies,
        pinnedPfn: r.pinned_pfn === null ? null : r.pinned_pfn + k,
        currentPfn: r.current_pfn === null ? null : r.current_pfn + k,
      });
    };
    const addrs = anomalyAddrs.get(r.pid);
    if (addrs) for (let i = lowerBound(addrs, first); i < addrs.length && addrs[i] < end; i++) add(addrs[i], perPage.get(`${r.pid}:${addrs[i]}`) ?? 0);
    const kind = r.pinned_pfn !== null && r.current_pfn !== r.pinned_pfn ? 'moved' : 'rest';
    for (let addr = first; addr < end && taken[kind] < limit; addr += PAGE_SIZE) {
      if (addrs && perPage.has(`${r.pid}:${addr}`)) continue; // listed above
      add(addr, 0);
      taken[kind]++;
    }
  }
  const moved = (p: TimelinePageRef) => (p.pinnedPfn !== null && p.currentPfn !== p.pinnedPfn ? 1 : 0);
  out.sort((a, b) => b.anomalies - a.anomalies || moved(b) - moved(a) || b.pinId - a.pinId || a.addr - b.addr);
  return out.slice(0, limit);
}
