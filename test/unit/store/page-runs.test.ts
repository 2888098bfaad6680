// A pin's pages stored as runs (pin_page_runs): the writer's per-run diff on re-publish, a 16M-page pin in one
// row, and older files (pin_pages, one row a page) converted into runs — in place by a writer, in a TEMP table
// by a read-only reader — with the same runs RunBuilder makes page by page.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import Database from 'better-sqlite3';
import { RunBuilder, pageAt, type PinRun } from '../../../schema/pin-runs.ts';
import { SCHEMA_VERSION } from '../../../schema/tables.ts';
import { Store, StoreQueries } from '../../../collector/store/index.ts';
import { SESSION, anomaly, pin, tempDir, withPages } from './helpers.ts';
import { join } from 'node:path';

const PAGE = 4096;

function count(file: string, sql: string): number {
  const db = new Database(file, { readonly: true });
  try {
    return (db.prepare(sql).get() as { n: number }).n;
  } finally {
    db.close();
  }
}

function hasTable(file: string, name: string): boolean {
  return count(file, `SELECT count(*) AS n FROM sqlite_master WHERE type = 'table' AND name = '${name}'`) === 1;
}

/** Rows one flush of `p` writes (the pins row included). */
function rowsOfFlush(s: Store, p: Parameters<Store['pin']>[0]): number {
  const before = s.stats().rowsWritten;
  s.pin(p);
  s.flush();
  return s.stats().rowsWritten - before;
}

describe('the writer stores runs and rewrites only the runs that changed', () => {
  test('one divergent page inside a run: the run splits in three; unchanged re-publish writes the pin row only; back to one run deletes the split', (t) => {
    const file = join(tempDir(t), 'diff.db');
    const s = Store.open(file);
    t.after(() => s.close());
    s.startSession(SESSION);
    const base = pin(1, { len: 1024 * PAGE, pageCount: 1024, runs: [{ page: 0, count: 1024, pinnedPfn: 0x10000, currentPfn: 0x10000, snapshotLate: false }] });
    assert.equal(rowsOfFlush(s, base), 2, 'the pin row and one run');
    assert.equal(count(file, 'SELECT count(*) AS n FROM pin_page_runs'), 1);

    const diverged = withPages({ ...base, state: 'diverged' }, { 500: { currentPfn: 0x99999 } });
    assert.equal(diverged.runs.length, 3);
    // pin row + run 0 shortened (upsert) + run 500 + run 501 (inserts)
    assert.equal(rowsOfFlush(s, diverged), 4);
    assert.deepEqual(s.pinRuns(1)?.runs, diverged.runs);
    assert.equal(s.pins()[0].divergedPages, 1);

    assert.equal(rowsOfFlush(s, diverged), 1, 'nothing changed: the pin row only');

    // Two more pages of the same pin change: only their runs are touched, the others stay.
    const more = withPages(diverged, { 900: { currentPfn: null } });
    assert.equal(more.runs.length, 5);
    assert.equal(rowsOfFlush(s, more), 4, 'pin row + run 501 shortened + runs 900, 901');
    assert.deepEqual(s.pinRuns(1)?.runs, more.runs);

    // Back to intact: one run again; the runs starting at 500, 501, 900, 901 are deleted.
    assert.equal(rowsOfFlush(s, base), 6);
    assert.deepEqual(s.pinRuns(1)?.runs, base.runs);
    assert.equal(count(file, 'SELECT count(*) AS n FROM pin_page_runs'), 1);
    assert.equal(s.pins()[0].divergedPages, 0);
  });

  test('a 16M-page (64 GiB) contiguous pin is one row; its mapped address and late flag round-trip', (t) => {
    const file = join(tempDir(t), 'big.db');
    const s = Store.open(file);
    t.after(() => s.close());
    s.startSession(SESSION);
    const pages = 16 * 1024 * 1024;
    const big = pin(2, { len: pages * PAGE, pageCount: pages, runs: [{ page: 0, count: pages, pinnedPfn: 0x4000000, currentPfn: 0x4000000, snapshotLate: false }] });
    assert.equal(rowsOfFlush(s, big), 2);
    const moved: PinRun[] = [
      { page: 0, count: pages / 2, pinnedPfn: 0x4000000, currentPfn: 0x4000000, snapshotLate: true, mappedAddr: 0x7e00_0000_0000 },
      { page: pages / 2, count: pages / 2, pinnedPfn: 0x4000000 + pages / 2, currentPfn: 0x4000000 + pages / 2, snapshotLate: false },
    ];
    assert.equal(rowsOfFlush(s, { ...big, runs: moved }), 3);
    assert.deepEqual(s.pinRuns(2)?.runs, moved);
    assert.equal(s.pins()[0].pageCount, pages);
    const q = StoreQueries.open(file);
    t.after(() => q.close());
    const d = q.timeline(100, big.addr + (pages / 2 + 7) * PAGE, 0);
    assert.deepEqual(d.pins[0].page, { page: pages / 2 + 7, pinnedPfn: 0x4000000 + pages / 2 + 7, currentPfn: 0x4000000 + pages / 2 + 7, snapshotLate: false });
    assert.deepEqual(q.timeline(100, big.addr + 3 * PAGE, 0).pins[0].page?.mappedAddr, 0x7e00_0000_0000 + 3 * PAGE);
  });

  test('a released pin is written once more and forgotten; another pin is not touched', (t) => {
    const file = join(tempDir(t), 'released.db');
    const s = Store.open(file);
    t.after(() => s.close());
    s.startSession(SESSION);
    s.pin(pin(1));
    s.pin(withPages(pin(2), { 1: { currentPfn: 0x7777 } }));
    s.flush();
    assert.equal(rowsOfFlush(s, pin(1, { state: 'released', releasedNs: 5 })), 1);
    assert.deepEqual(s.pinRuns(2)?.runs.length, 3);
    assert.deepEqual(s.pinRuns(1)?.runs, pin(1).runs);
  });
});

/** Old per-page layout (versions 1 and 2). */
const PIN_PAGES_DDL = `CREATE TABLE pin_pages (
  pin_id INTEGER NOT NULL REFERENCES pins(id), page_index INTEGER NOT NULL, addr INTEGER NOT NULL,
  pinned_pfn INTEGER, current_pfn INTEGER, snapshot_late INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (pin_id, page_index))`;

interface OldPage {
  pinned: number | null;
  current: number | null;
  late?: boolean;
}

/** A version-2 file: pins as a writer stores them, pages as pin_pages rows, no pin_page_runs. */
function oldFile(file: string, pins: { id: number; pages: OldPage[] }[]): void {
  const s = Store.open(file);
  s.startSession(SESSION);
  for (const p of pins) s.pin(pin(p.id, { len: p.pages.length * PAGE, pageCount: p.pages.length, runs: [] }));
  s.anomaly(anomaly(1, { addr: pin(1).addr + 5 * PAGE, pinId: 1 }));
  s.endSession();
  s.close();
  const db = new Database(file);
  db.exec(`DROP TABLE pin_page_runs; ${PIN_PAGES_DDL}; UPDATE meta SET value = '2' WHERE key = 'schema_version'`);
  const ins = db.prepare('INSERT INTO pin_pages VALUES (?,?,?,?,?,?)');
  for (const p of pins) p.pages.forEach((pg, i) => ins.run(p.id, i, pin(p.id).addr + i * PAGE, pg.pinned, pg.current, pg.late ? 1 : 0));
  db.close();
}

function runsOf(pages: OldPage[]): PinRun[] {
  const b = new RunBuilder();
  pages.forEach((p, i) => b.push(i, p.pinned, p.current, p.late ?? false));
  return b.runs;
}

/** 12 contiguous pages with page 5 diverged mid-run (the device holds 0x1005, the PTE maps 0x9999). */
const MID_RUN: OldPage[] = Array.from({ length: 12 }, (_, i) => ({ pinned: 0x1000 + i, current: i === 5 ? 0x9999 : 0x1000 + i }));
/** Every shape a run can end on: a pfn jump, a late flag, unknown and not-present pfns, the pfn sequence resuming. */
const MIXED: OldPage[] = [
  { pinned: 0x2000, current: 0x2000 },
  { pinned: 0x2001, current: 0x2001 },
  { pinned: 0x2002, current: 0x2002, late: true },
  { pinned: 0x2003, current: 0x2003, late: true },
  { pinned: 0x3000, current: 0x3000 },
  { pinned: null, current: null },
  { pinned: null, current: null },
  { pinned: 0x3003, current: null },
  { pinned: 0x3004, current: null },
  { pinned: 0x3005, current: 0x3005 },
  { pinned: 0x3006, current: 0x3006 },
];

describe('files older than version 3 (pin_pages): converted into runs', () => {
  test('a reader opens one read-only: runs built in a TEMP table, the file left as it is', (t) => {
    const file = join(tempDir(t), 'v2-read.db');
    oldFile(file, [{ id: 1, pages: MID_RUN }, { id: 2, pages: MIXED }]);
    const q = StoreQueries.open(file);
    t.after(() => q.close());
    assert.deepEqual(q.pinRuns(1)?.runs, [
      { page: 0, count: 5, pinnedPfn: 0x1000, currentPfn: 0x1000, snapshotLate: false },
      { page: 5, count: 1, pinnedPfn: 0x1005, currentPfn: 0x9999, snapshotLate: false },
      { page: 6, count: 6, pinnedPfn: 0x1006, currentPfn: 0x1006, snapshotLate: false },
    ]);
    assert.deepEqual(q.pinRuns(2)?.runs, runsOf(MIXED));
    assert.deepEqual(q.pins().map((p) => [p.id, p.pageCount, p.divergedPages]), [[1, 12, 1], [2, 11, 0]]);
    const d = q.timeline(100, pin(1).addr + 5 * PAGE, 0);
    assert.deepEqual(d.pins[0].page, { page: 5, pinnedPfn: 0x1005, currentPfn: 0x9999, snapshotLate: false });
    assert.equal(q.pinnedPages(3)[0].addr, pin(1).addr + 5 * PAGE, 'the page with the anomaly first');
    assert.equal(q.pinnedPages(3)[1].currentPfn, null, 'then the moved pages (not present counts as moved)');
    assert.ok(hasTable(file, 'pin_pages') && !hasTable(file, 'pin_page_runs'), 'the file is not touched');
    assert.equal(count(file, `SELECT CAST(value AS INTEGER) AS n FROM meta WHERE key = 'schema_version'`), 2);
  });

  test('a writer upgrades it in place: pin_pages become runs and go, the version is the current one; re-publish is a diff', (t) => {
    const file = join(tempDir(t), 'v2-write.db');
    oldFile(file, [{ id: 1, pages: MID_RUN }, { id: 2, pages: MIXED }]);
    const s = Store.open(file);
    t.after(() => s.close());
    assert.equal(count(file, `SELECT CAST(value AS INTEGER) AS n FROM meta WHERE key = 'schema_version'`), SCHEMA_VERSION);
    assert.ok(!hasTable(file, 'pin_pages') && hasTable(file, 'pin_page_runs'));
    assert.equal(count(file, 'SELECT count(*) AS n FROM pin_page_runs'), 3 + runsOf(MIXED).length);
    assert.deepEqual(s.pinRuns(1)?.runs.map((r) => [r.page, r.count, r.currentPfn]), [[0, 5, 0x1000], [5, 1, 0x9999], [6, 6, 0x1006]]);
    assert.deepEqual(s.pinRuns(2)?.runs, runsOf(MIXED));
    assert.equal(pageAt(s.pinRuns(2)!.runs, 3)?.snapshotLate, true);
    // The upgraded pin published again, healed: its old runs are replaced, not added to.
    s.startSession(SESSION);
    s.pin(pin(1, { len: 12 * PAGE, pageCount: 12, runs: runsOf(MID_RUN.map((p) => ({ ...p, current: p.pinned }))) }));
    s.flush();
    assert.deepEqual(s.pinRuns(1)?.runs, [{ page: 0, count: 12, pinnedPfn: 0x1000, currentPfn: 0x1000, snapshotLate: false }]);
  });

  test('the SQL conversion makes the runs RunBuilder makes, on random pages', (t) => {
    let seed = 7;
    const rnd = (n: number) => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) % n);
    const pins = Array.from({ length: 6 }, (_, k) => {
      let pfn = 0x10000 * (k + 1);
      const pages: OldPage[] = [];
      for (let i = 0; i < 400; i++) {
        if (rnd(20) === 0) pfn += 1 + rnd(50); // a jump: the next folio is elsewhere
        const pinned = rnd(40) === 0 ? null : pfn;
        const roll = rnd(30);
        const current = roll === 0 ? null : roll === 1 ? 0x900000 + rnd(1000) : pinned;
        pages.push({ pinned, current, late: rnd(25) === 0 });
        pfn++;
      }
      return { id: k + 1, pages };
    });
    const dir = tempDir(t);
    oldFile(join(dir, 'r.db'), pins);
    oldFile(join(dir, 'w.db'), pins);
    const r = StoreQueries.open(join(dir, 'r.db'));
    const w = Store.open(join(dir, 'w.db'));
    t.after(() => (r.close(), w.close()));
    for (const p of pins) {
      assert.deepEqual(r.pinRuns(p.id, 0, 1000)?.runs, runsOf(p.pages), `reader, pin ${p.id}`);
      assert.deepEqual(w.pinRuns(p.id, 0, 1000)?.runs, runsOf(p.pages), `writer, pin ${p.id}`);
    }
  });
});

describe('pinRuns paging', () => {
  test('offset and limit page through the runs; the limit is capped; an unknown pin is null', (t) => {
    const file = join(tempDir(t), 'paging.db');
    const s = Store.open(file);
    t.after(() => s.close());
    s.startSession(SESSION);
    // 2,500 pages, every other pfn: 2,500 runs of one page.
    const runs: PinRun[] = Array.from({ length: 2500 }, (_, i) => ({ page: i, count: 1, pinnedPfn: 0x10000 + 2 * i, currentPfn: 0x10000 + 2 * i, snapshotLate: false }));
    s.pin(pin(1, { len: 2500 * PAGE, pageCount: 2500, runs }));
    s.flush();
    const all = s.pinRuns(1, 0, 5000)!;
    assert.equal(all.totalRuns, 2500);
    assert.equal(all.runs.length, 1000, 'capped at PIN_RUNS_PAGE_MAX');
    const tail = s.pinRuns(1, 2400, 500)!;
    assert.deepEqual([tail.offset, tail.runs.length, tail.runs[0].page, tail.pageCount], [2400, 100, 2400, 2500]);
    assert.equal(s.pinRuns(1, 9999, 10)!.runs.length, 0);
    assert.equal(s.pinRuns(42), null);
  });
});
