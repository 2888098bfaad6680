// Storing one big pin: rows and time through Store's CollectorSink API (pin() + flush) into a fresh WAL file,
// for a physically contiguous pin (one run), a THP-backed one (one run per 2 MiB folio, folios scattered) and
// the re-publish after one page inside it diverged (the store rewrites only the runs that changed).
//   node --import tsx bench/pin-store.bench.ts [--pages N] [--json]
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { PinRun } from '../schema/pin-runs.ts';
import type { Pin } from '../schema/pins.ts';
import { Store } from '../collector/store/index.ts';

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1] : dflt;
}

const PAGES = Number(arg('pages', String(16 * 1024 * 1024)));
const FOLIO = 512; // 2 MiB of 4 KiB pages
const SESSION = { host: 'bench', kernel: 'bench', bpftraceVersion: '0', mode: 'tracepoint' as const, probes: [] };

function pinOf(id: number, runs: PinRun[]): Pin {
  return {
    id, pid: 4242, comm: 'qemu-system-x86', source: 'vfio', handle: `container fd 7 iova 0x0 #${id}`, addr: 0x7f00_0000_0000,
    len: PAGES * 4096, writable: true, longterm: true, backing: 'anon', createdNs: 1, releasedNs: null, state: 'intact',
    pageCount: PAGES, runs,
  };
}

/** One run per 2 MiB folio, folios at scattered physical addresses. */
function thpRuns(): PinRun[] {
  const runs: PinRun[] = [];
  for (let p = 0, f = 0; p < PAGES; p += FOLIO, f++) {
    const pfn = ((f * 7919) % (PAGES / FOLIO + 1)) * FOLIO + 0x100000;
    runs.push({ page: p, count: Math.min(FOLIO, PAGES - p), pinnedPfn: pfn, currentPfn: pfn, snapshotLate: false });
  }
  return runs;
}

/** The runs with page `page` showing another pfn (the run holding it split in up to three). */
function divergeOne(runs: PinRun[], page: number): PinRun[] {
  const out: PinRun[] = [];
  for (const r of runs) {
    if (page < r.page || page >= r.page + r.count) {
      out.push(r);
      continue;
    }
    const k = page - r.page;
    if (k > 0) out.push({ ...r, count: k });
    out.push({ ...r, page, count: 1, pinnedPfn: r.pinnedPfn === null ? null : r.pinnedPfn + k, currentPfn: 0x9999999 });
    if (k + 1 < r.count) out.push({ ...r, page: page + 1, count: r.count - k - 1, pinnedPfn: r.pinnedPfn === null ? null : r.pinnedPfn + k + 1, currentPfn: r.currentPfn === null ? null : r.currentPfn + k + 1 });
  }
  return out;
}

function measure(store: Store, p: Pin): { rows: number; ms: number } {
  const before = store.stats().rowsWritten;
  const t0 = performance.now();
  store.pin(p);
  store.flush();
  return { rows: store.stats().rowsWritten - before, ms: performance.now() - t0 };
}

const dir = mkdtempSync(join(tmpdir(), 'pinwatch-pin-store-'));
try {
  const file = join(dir, 'pins.db');
  const store = Store.open(file, { flushIntervalMs: 60_000 });
  store.startSession(SESSION);
  const contiguous = [{ page: 0, count: PAGES, pinnedPfn: 0x100000, currentPfn: 0x100000, snapshotLate: false }];
  const thp = thpRuns();
  const results = {
    pages: PAGES,
    contiguous: measure(store, pinOf(1, contiguous)),
    contiguousOneDiverged: measure(store, pinOf(1, divergeOne(contiguous, PAGES >> 1))),
    thp: { runs: thp.length, ...measure(store, pinOf(2, thp)) },
    thpOneDiverged: measure(store, pinOf(2, divergeOne(thp, (PAGES >> 1) + 3))),
    thpUnchanged: measure(store, pinOf(2, divergeOne(thp, (PAGES >> 1) + 3))),
  };
  store.close();
  const fileMiB = statSync(file).size / 2 ** 20;
  if (process.argv.includes('--json')) console.log(JSON.stringify({ ...results, fileMiB }));
  else {
    const row = (name: string, r: { rows: number; ms: number }) => console.log(`${name.padEnd(34)} ${String(r.rows).padStart(7)} rows ${r.ms.toFixed(1).padStart(9)} ms`);
    console.log(`one pin of ${PAGES.toLocaleString()} pages (${((PAGES * 4096) / 2 ** 30).toFixed(0)} GiB):`);
    row('contiguous (1 run)', results.contiguous);
    row('  re-publish, one page diverged', results.contiguousOneDiverged);
    row(`THP-backed (${thp.length.toLocaleString()} runs)`, results.thp);
    row('  re-publish, one page diverged', results.thpOneDiverged);
    row('  re-publish, unchanged', results.thpUnchanged);
    console.log(`file: ${fileMiB.toFixed(1)} MiB`);
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
