// The reads made right after an event that registered something: /proc/PID/maps once for the backing of its
// buffers, /proc/PID/pagemap for the pinned pfns of each new pin. The model hands the ranges over in
// `effects.admissions` and takes the result back through admit(): it never reads /proc itself.
import type { PagemapReader } from '../contracts.ts';
import type { Clock } from '../clock.ts';
import type { Admission, PinTimeReads } from '../model/effects.ts';
import type { MapsReader } from '../model/maps.ts';
import { readPagesInto } from './pagemap.ts';

export interface PinTimeReaderOptions {
  pagemap: PagemapReader;
  maps: MapsReader;
  clock: Clock;
}

export class PinTimeReader {
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
      if (this.stateScratch.length < pin.nPages) this.stateScratch = new Uint8Array(pin.nPages);
      const pfns = new Float64Array(pin.nPages);
      const err = readPagesInto(this.o.pagemap, pin.pid, pin.firstVa, pin.nPages, pfns, this.stateScratch, 0);
      out.snapshots.push({ pin, pfns: err ? null : pfns, atNs: this.o.clock.nowNs() });
    }
    return out;
  }
}
