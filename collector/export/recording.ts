// Streams a recording's rows in the store's own types (schema/), for the exporters: one read-only connection
// (the store's version check first), rows iterated rather than loaded, so a multi-GB recording exports in
// constant memory.
import Database from 'better-sqlite3';
import type { Anomaly, PagemapRead } from '../../schema/anomalies.ts';
import type { SequencedEvent } from '../../schema/events.ts';
import type { Incident } from '../../schema/incidents.ts';
import type { Pin } from '../../schema/pins.ts';
import type { SessionInfo } from '../../schema/session.ts';
import { Store } from '../store/index.ts';
import { readIncidents } from '../store/incidents.ts';
import {
  anomalyFromRow, eventFromRow, pagemapReadFromRow, pinPageFromRow, pinSummaryFromRow, sessionFromRow,
  type AnomalyRow, type EventRow, type PagemapRow, type PinPageRow, type PinRow, type SessionRow,
} from '../store/rows.ts';

export class RecordingRows {
  private readonly db: Database.Database;

  /** Throws StoreError (with a fix) when the file is not a pinwatch recording this version reads. */
  constructor(readonly file: string) {
    Store.open(file, { readonly: true }).close();
    this.db = new Database(file, { readonly: true, fileMustExist: true });
  }

  sessions(): SessionInfo[] {
    return (this.db.prepare(`SELECT * FROM sessions ORDER BY id`).all() as SessionRow[]).map(sessionFromRow);
  }

  *events(): Generator<SequencedEvent> {
    for (const r of this.db.prepare(`SELECT * FROM events ORDER BY seq`).iterate() as Iterable<EventRow>) yield eventFromRow(r);
  }

  *pagemapReads(): Generator<{ id: number; reason: string; read: PagemapRead }> {
    for (const r of this.db.prepare(`SELECT * FROM pagemap_reads ORDER BY id`).iterate() as Iterable<PagemapRow>) {
      yield { id: r.id, reason: r.reason, read: pagemapReadFromRow(r) };
    }
  }

  /** Every pin with its pages, in id order. */
  *pins(): Generator<Pin> {
    const pages = this.db.prepare(`SELECT * FROM pin_pages WHERE pin_id = ? ORDER BY page_index`);
    for (const r of this.db.prepare(`SELECT p.*, 0 AS diverged_pages FROM pins p ORDER BY id`).all() as PinRow[]) {
      const { pageCount: _n, divergedPages: _d, ...pin } = pinSummaryFromRow(r);
      yield { ...pin, pages: (pages.all(r.id) as PinPageRow[]).map(pinPageFromRow) };
    }
  }

  anomalies(): Anomaly[] {
    return (this.db.prepare(`SELECT * FROM anomalies ORDER BY seq`).all() as AnomalyRow[]).map(anomalyFromRow);
  }

  incidents(): Incident[] {
    return readIncidents(this.db);
  }

  close(): void {
    this.db.close();
  }
}
