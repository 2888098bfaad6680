// Builders for store/publish tests: a temp directory per test, events of every kind, anomalies, pins.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Anomaly } from '../../../schema/anomalies.ts';
import type { SequencedEvent, TraceEvent } from '../../../schema/events.ts';
import type { Pin } from '../../../schema/pins.ts';
import { RunBuilder, pagesOfRuns, type RunPage } from '../../../schema/pin-runs.ts';
import type { SessionStart } from '../../../collector/contracts.ts';

export function tempDir(t: { after(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'pinwatch-store-test-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

export const SESSION: SessionStart = {
  host: 'testhost',
  kernel: '6.18.0-test',
  bpftraceVersion: '0.17.0',
  mode: 'tracepoint',
  probes: [
    { script: 'tracepoint/madvise', attached: true },
    { script: 'kprobe/wp-page', attached: false, reason: 'tracepoint mode' },
  ],
};

let seq = 0;
export function resetSeq(n = 0): void {
  seq = n;
}

export function sequenced<T extends TraceEvent>(e: T, s?: number): T & { seq: number } {
  return Object.assign(e, { seq: s ?? ++seq });
}

const base = (tsNs: number, pid = 100, comm = 'app') => ({ tsNs, pid, tid: pid, comm });

/** One event of every kind the store maps specially, with its expected addr/len columns. */
export function eventsOfEveryKind(ts0 = 1_000_000): { e: SequencedEvent; addr: number | null; len: number | null }[] {
  let ts = ts0;
  const A = 0x7f00_0000_0000;
  const out: { e: TraceEvent; addr: number | null; len: number | null }[] = [
    { e: { kind: 'pin_iovec', ...base(ts++), source: 'io_uring', fd: 5, opcode: 0, index: 0, addr: A, len: 16384 }, addr: A, len: 16384 },
    { e: { kind: 'pin_result', ...base(ts++), source: 'io_uring', fd: 5, opcode: 0, nr: 1, ret: 0, mm: '0xffff888100000000' }, addr: null, len: null },
    { e: { kind: 'vfio_dma', ...base(ts++), op: 'map', fd: 7, vaddr: A + 0x10000, iova: 0x100000, size: 0x2000, flags: 3, ret: 0 }, addr: A + 0x10000, len: 0x2000 },
    { e: { kind: 'madvise', ...base(ts++), addr: A + 4096, len: 4096, behavior: 4, ret: 0 }, addr: A + 4096, len: 4096 },
    { e: { kind: 'munmap', ...base(ts++), addr: A + 0x20000, len: 8192, ret: 0 }, addr: A + 0x20000, len: 8192 },
    { e: { kind: 'mremap', ...base(ts++), addr: A, oldLen: 16384, newLen: 16384, flags: 3, newAddrArg: A + 0x100000, ret: A + 0x100000 }, addr: A, len: 16384 },
    { e: { kind: 'mmap_fixed', ...base(ts++), addr: A + 0x30000, len: 4096, prot: 3, flags: 0x32, fd: -1, ret: A + 0x30000 }, addr: A + 0x30000, len: 4096 },
    { e: { kind: 'fork', ...base(ts++), childPid: 101, childComm: 'app child', cloneFlags: 17 }, addr: null, len: null },
    { e: { kind: 'exit', ...base(ts++) }, addr: null, len: null },
    { e: { kind: 'uffd_register', ...base(ts++), op: 'register', fd: 9, addr: A + 0x40000, len: 0x200000, mode: 1, ret: 0 }, addr: A + 0x40000, len: 0x200000 },
    { e: { kind: 'fault', ...base(ts++), addr: A + 4096 + 123, errorCode: 7, ip: 0x401000 }, addr: A + 4096 + 123, len: null },
    { e: { kind: 'collapse_file', ...base(ts++), mm: '0xffff888100000000', hpfn: 0x200000, index: 0, addr: A + 0x200000, isShmem: true, filename: 'memfd:x (deleted)', nr: 512, result: 5 }, addr: A + 0x200000, len: 0x200000 },
    { e: { kind: 'scan_pmd', ...base(ts++, 50, 'khugepaged'), mm: '0xffff888100000000', pfn: 0x1234, referenced: 1, noneOrZero: 0, status: 14, unmapped: 0 }, addr: null, len: null },
    { e: { kind: 'gup', ...base(ts++), fn: 'pin_user_pages_remote', addr: A, nrPages: 2, gupFlags: 0x80103, ret: 2, pfns: [0x1111, 0x2222] }, addr: A, len: 8192 },
    { e: { kind: 'wp_page', ...base(ts++), addr: A + 8, outcome: 'copy', oldPfn: 0x1111, newPfn: 0x3333 }, addr: A + 8, len: null },
    { e: { kind: 'migrate_pte', ...base(ts++), op: 'set', addr: A, pte: 0, order: 9 }, addr: A, len: 0x200000 },
    { e: { kind: 'mmu_invalidate', ...base(ts++), mm: '0xffff888100000000', start: A, end: A + 0x3000, event: 1 }, addr: A, len: 0x3000 },
    { e: { kind: 'lost', ...base(ts++, 0, ''), count: 12 }, addr: null, len: null },
  ];
  return out.map((x) => ({ ...x, e: sequenced(x.e) }));
}

export function anomaly(seqNo: number, over: Partial<Anomaly> = {}): Anomaly {
  return {
    seq: seqNo,
    rule: 'pin-pte-divergence',
    severity: 'critical',
    pid: 100,
    comm: 'app',
    addr: 0x7f00_0000_1000,
    len: 4096,
    pfn: 0x1111,
    newPfn: 0x3333,
    confirmed: true,
    lowConfidence: false,
    tsNs: 2_000_000 + seqNo,
    wallMs: 1_700_000_000_000 + seqNo,
    pinId: 1,
    summary: `anomaly ${seqNo}`,
    evidence: [{ type: 'event', seq: 1, note: 'the pin' }],
    ...over,
  };
}

export function pin(id: number, over: Partial<Pin> = {}): Pin {
  const addr = 0x7f00_0000_0000;
  const out: Pin = {
    id,
    pid: 100,
    comm: 'app',
    source: 'io_uring',
    handle: `ring fd 5 slot ${id}`,
    addr,
    len: 4 * 4096,
    writable: true,
    longterm: true,
    backing: 'anon',
    createdNs: 1_000_000,
    releasedNs: null,
    state: 'intact',
    pageCount: 4,
    runs: [{ page: 0, count: 4, pinnedPfn: 0x1000, currentPfn: 0x1000, snapshotLate: false }],
    ...over,
  };
  return out;
}

/** The pin with some pages changed (page index → fields), its runs rebuilt as the model would publish them. */
export function withPages(p: Pin, edits: Record<number, Partial<Omit<RunPage, 'page'>>>): Pin {
  const b = new RunBuilder();
  for (const pg of pagesOfRuns(p.runs)) {
    const e = { ...pg, ...edits[pg.page] };
    b.push(pg.page, e.pinnedPfn, e.currentPfn, e.snapshotLate, e.mappedAddr);
  }
  return { ...p, runs: b.runs };
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
