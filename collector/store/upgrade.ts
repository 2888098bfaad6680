// Upgrading an older pinwatch file in place: new tables, new columns (schema/tables.ts MIGRATIONS); from version 3
// on, a pin's pages are runs: an older file's pin_pages rows become pin_page_runs (page-runs.ts), pin_pages goes.
import type Database from 'better-sqlite3';
import { DDL, MIGRATIONS, SCHEMA_VERSION } from '../../schema/tables.ts';
import { backfillIncidents } from './incidents.ts';
import { convertPinPages } from './page-runs.ts';
import { META_VERSION, hasTable, metaValue, setMeta } from './meta.ts';

function columns(db: Database.Database, table: string): Set<string> {
  return new Set((db.prepare(`SELECT name FROM pragma_table_info(?)`).all(table) as { name: string }[]).map((r) => r.name));
}

/** Bring an older pinwatch file to SCHEMA_VERSION: new tables, new columns, pages as runs. One transaction. */
export function upgradeSchema(db: Database.Database): void {
  db.transaction(() => {
    const from = fileSchemaVersion(db);
    db.exec(DDL);
    for (const m of MIGRATIONS) if (!columns(db, m.table).has(m.column)) db.exec(m.ddl);
    if (from < 2) backfillIncidents(db);
    if (from < 3) convertPinPages(db);
    // Version 4 (after 3's pin_page_runs): the event_counts table comes with DDL above; nothing to backfill —
    // a file written before it stored every event as a row, and the queries read both.
    setMeta(db, META_VERSION, String(SCHEMA_VERSION));
  }).immediate();
}

/** The schema version the file says it has (0 when it says none). */
export function fileSchemaVersion(db: Database.Database): number {
  if (!hasTable(db, 'meta')) return 0;
  const v = metaValue(db, META_VERSION);
  return v !== null ? Number(v) : 0;
}
