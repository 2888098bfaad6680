// A pin's pages as stored: runs in pin_page_runs (schema/tables.ts, schema/pin-runs.ts). Rows to runs, the
// conversion of an older file's per-page pin_pages into runs (done in SQL: a writer upgrading in place, a
// reader of an older file into a TEMP table of its own connection), and one page of a pin looked up by index.
import type Database from 'better-sqlite3';
import { pageAt, type PinRun, type RunPage } from '../../schema/pin-runs.ts';
import { PIN_PAGE_RUNS_COLUMNS } from '../../schema/tables.ts';
import { hasTable } from './meta.ts';
import type { Statements } from './statements.ts';

export interface PinRunRow {
  pin_id: number;
  page: number;
  count: number;
  pinned_pfn: number | null;
  current_pfn: number | null;
  snapshot_late: number;
  mapped_addr: number | null;
}

export function pinRunFromRow(r: PinRunRow): PinRun {
  const run: PinRun = { page: r.page, count: r.count, pinnedPfn: r.pinned_pfn, currentPfn: r.current_pfn, snapshotLate: r.snapshot_late !== 0 };
  if (r.mapped_addr !== null) run.mappedAddr = r.mapped_addr;
  return run;
}

/**
 * INSERT … SELECT turning `from`.pin_pages (one row a page) into runs in `into`.pin_page_runs. A page continues
 * a run when its pinned and current pfn minus its index equal the run's (both NULL counts as equal), its
 * snapshot_late flag is the same and its index follows: gaps and islands — per (pin, flags, pfn offsets) the
 * index minus its rank is constant along a run. The same runs RunBuilder makes page by page (pin_pages has no
 * mapped address: older files never stored one).
 */
function convertSql(from: 'main', into: 'main' | 'temp'): string {
  return `INSERT INTO ${into}.pin_page_runs (pin_id, page, count, pinned_pfn, current_pfn, snapshot_late, mapped_addr)
    SELECT pin_id, min(page_index), count(*), min(pinned_pfn), min(current_pfn), late, NULL FROM (
      SELECT pin_id, page_index, pinned_pfn, current_pfn, late, kp, kc,
        page_index - row_number() OVER (PARTITION BY pin_id, late, kp, kc ORDER BY page_index) AS grp
      FROM (SELECT pin_id, page_index, pinned_pfn, current_pfn, (snapshot_late != 0) AS late,
              pinned_pfn - page_index AS kp, current_pfn - page_index AS kc FROM ${from}.pin_pages)
    ) GROUP BY pin_id, late, kp, kc, grp`;
}

/** Writer, upgrading a file older than version 3 in place: its pin_pages become runs, then pin_pages goes. Returns the runs written. */
export function convertPinPages(db: Database.Database): number {
  if (!hasTable(db, 'pin_pages')) return 0;
  const n = db.prepare(convertSql('main', 'main')).run().changes;
  db.exec('DROP TABLE pin_pages');
  return n;
}

function hasTempTable(db: Database.Database, name: string): boolean {
  return db.prepare(`SELECT 1 FROM sqlite_temp_master WHERE type = 'table' AND name = ?`).get(name) !== undefined;
}

/**
 * A read-only connection on a file older than version 3 (no pin_page_runs): build the runs from its pin_pages in
 * a TEMP table of this connection, so every query reads `pin_page_runs` alike (an unqualified name finds the TEMP
 * table). The file is not touched. Once per connection; the runs are those of the moment it ran (an older
 * pinwatch still writing the file is not followed).
 */
export function ensureRunsReadable(db: Database.Database): void {
  if (hasTable(db, 'pin_page_runs') || hasTempTable(db, 'pin_page_runs')) return;
  db.pragma('temp_store = MEMORY'); // the web process drops root after opening: no temp file to create later
  // Without the foreign key: a TEMP table cannot reference the file's pins (SQLite resolves it in temp).
  db.exec(`CREATE TEMP TABLE pin_page_runs (\n${PIN_PAGE_RUNS_COLUMNS.replace(/ REFERENCES pins\(id\)/, '')}) WITHOUT ROWID`);
  if (hasTable(db, 'pin_pages')) db.prepare(convertSql('main', 'temp')).run();
}

/** The runs of one pin in page order, `offset`/`limit` in runs (limit < 0: all). */
export function readRuns(q: Statements, pinId: number, offset = 0, limit = -1): PinRun[] {
  const rows = q.get(`SELECT * FROM pin_page_runs WHERE pin_id = ? ORDER BY page LIMIT ? OFFSET ?`).all(pinId, limit, offset) as PinRunRow[];
  return rows.map(pinRunFromRow);
}

/** How many runs one pin has. */
export function countRuns(q: Statements, pinId: number): number {
  return (q.get(`SELECT count(*) AS n FROM pin_page_runs WHERE pin_id = ?`).get(pinId) as { n: number }).n;
}

/** Page `page` of a pin, expanded from the run holding it (undefined: no run holds it). */
export function readPage(q: Statements, pinId: number, page: number): RunPage | undefined {
  const r = q.get(`SELECT * FROM pin_page_runs WHERE pin_id = ? AND page <= ? ORDER BY page DESC LIMIT 1`).get(pinId, page) as PinRunRow | undefined;
  return r === undefined ? undefined : pageAt([pinRunFromRow(r)], page);
}
