// The reads made right after an event that registered something: /proc/PID/maps once for the backing of its
// buffers, /proc/PID/pagemap for the pinned pfns of each new pin (in chunks of PIN_TIME_CHUNK pages, folded into
// runs: a 64 GiB THP-backed pin becomes a few thousand runs without a per-page buffer). The model hands the ranges over in
// `effects.admissions` and takes the result back through admit(): it never reads /proc itself.
import type { PagemapReader } from '../contracts.ts';
import type { Clock } from '../clock.ts';
import type { Admission, PinTimeReads } from '../model/effects.ts';
import type { MapsReader } from '../model/maps.ts';
import { PAGE_SIZE } from '../../schema/kernel.ts';
import { PageRuns } from '../model/page-runs.ts';
import type { PinRecord } from '../model/pin-record.ts';
import { readPagesInto } from './pagemap.ts';

export interface PinTimeReaderOptions {
  pagemap: PagemapReader;
  maps: MapsReader;
  clock: Clock;
}

/** Pages read per pagemap pread at pin time (512 KiB of pagemap entries): a 64 GiB pin is 256 reads, never one 128 MiB buffer. */
export const PIN_TIME_CHUNK = 65536;

export class PinTimeReader {
  private pfnScratch = new Float64Array(256);
  private stateScratch = new Uint8Array(256);

  constructor(private readonly o: PinTimeReaderOptions) {}

  /** Read what the admissions need (all of one process: one registration event). */
  read(admissions: readonly Admission[]): PinTimeReads {
    const out: PinTimeReads = { maps: null, snapshots: [] };
    if (admissions.length === 0) return out;
    out.maps = this.o.maps.read(admissions[0].pid);
    for (const a of admissions) {
      const pin = a.pin;
      if (pin === null) continue;
      const pfns = this.snapshot(pin);
      out.snapshots.push({ pin, pfns, atNs: this.o.clock.nowNs() });
    }
    return out;
  }

  /** The pin's pfns now, read in chunks and folded into runs as they come; null when pagemap is unreadable. */
  private snapshot(pin: PinRecord): PageRuns | null {
    const runs = new PageRuns(pin.nPages, 1, NaN);
    const load = runs.load();
    const chunk = Math.min(PIN_TIME_CHUNK, pin.nPages);
    if (this.pfnScratch.length < chunk) {
      this.pfnScratch = new Float64Array(chunk);
      this.stateScratch = new Uint8Array(chunk);
    }
    for (let page = 0; page < pin.nPages; page += chunk) {
      const n = Math.min(chunk, pin.nPages - page);
      const err = readPagesInto(this.o.pagemap, pin.pid, pin.firstVa + page * PAGE_SIZE, n, this.pfnScratch, this.stateScratch, 0);
      if (err) return null;
      load.chunk(page, this.pfnScratch, 0, n);
    }
    return load.finish();
  }
}
