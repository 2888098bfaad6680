// /proc/PID/pagemap: the ground truth for "which page does the page table map at this address now".
// 8 bytes per virtual page: bit 63 present, bit 62 swapped, bits 0-54 pfn (zeroed for non-root readers:
// "hidden", reported as unknown). One pread per contiguous run; the fd stays open per pid while it has
// pins so the periodic pass costs one syscall per run. Never throws: a failed read is a read with `error`.
import { closeSync, openSync, readSync } from 'node:fs';
import type { PagemapRead } from '../../schema/anomalies.ts';
import { PAGE_SIZE } from '../../schema/kernel.ts';
import type { PagemapReader } from '../contracts.ts';
import { systemClock, type Clock } from '../clock.ts';

/** stateOut bits of readInto. */
export const PM_PRESENT = 1;
export const PM_SWAPPED = 2;
/** Present but the pfn field is zero: pfns hidden (not root / no CAP_SYS_ADMIN). */
export const PM_HIDDEN = 4;

/** Prefix of PagemapRead.error when the process (or its mm) no longer exists. */
export const GONE = 'process gone';
export function isProcessGoneError(error: string | null | undefined): boolean {
  return typeof error === 'string' && error.startsWith(GONE);
}

/**
 * A reader that can fill typed arrays without one object per page: the model's pin-time snapshot and the
 * periodic pass over every live pin use it (1M pinned pages must not mean 1M objects per pass).
 */
export interface PagemapBulkReader extends PagemapReader {
  /**
   * Read `count` pages from `addr` into pfnOut[offset..] (NaN when not present, swapped or hidden) and
   * stateOut[offset..] (PM_* bits). Returns null, or an error string (then nothing was written).
   */
  readInto(pid: number, addr: number, count: number, pfnOut: Float64Array, stateOut: Uint8Array, offset: number): string | null;
  /** Forget per-pid resources (the process exited). */
  release?(pid: number): void;
}

export function isBulkReader(r: PagemapReader): r is PagemapBulkReader {
  return typeof (r as Partial<PagemapBulkReader>).readInto === 'function';
}

/** readInto for any PagemapReader (falls back to read(): one object per page, fine for fakes and small reads). */
export function readPagesInto(
  r: PagemapReader,
  pid: number,
  addr: number,
  count: number,
  pfnOut: Float64Array,
  stateOut: Uint8Array,
  offset: number,
): string | null {
  if (isBulkReader(r)) return r.readInto(pid, addr, count, pfnOut, stateOut, offset);
  let reads: PagemapRead[];
  try {
    reads = r.read(pid, addr, count);
  } catch (err) {
    return `read failed: ${(err as Error).message}`;
  }
  if (reads.length === 0) return `${GONE} (empty read)`;
  if (reads[0].error) return reads[0].error;
  for (let i = 0; i < count; i++) {
    const rd = reads[i];
    if (!rd || rd.error) {
      pfnOut[offset + i] = NaN;
      stateOut[offset + i] = 0;
      continue;
    }
    const hidden = rd.present && rd.pfn === null;
    pfnOut[offset + i] = rd.present && rd.pfn !== null ? rd.pfn : NaN;
    stateOut[offset + i] = (rd.present ? PM_PRESENT : 0) | (rd.swapped ? PM_SWAPPED : 0) | (hidden ? PM_HIDDEN : 0);
  }
  return null;
}

/** Build the PagemapRead object for one page from readInto's arrays. */
export function toPagemapRead(tsNs: number, pid: number, addr: number, pfn: number, state: number, error?: string | null): PagemapRead {
  if (error) return { tsNs, pid, addr, present: false, swapped: false, pfn: null, error };
  return {
    tsNs,
    pid,
    addr,
    present: (state & PM_PRESENT) !== 0,
    swapped: (state & PM_SWAPPED) !== 0,
    pfn: Number.isNaN(pfn) ? null : pfn,
  };
}

const TWO32 = 4294967296;

export interface ProcPagemapReaderOptions {
  procRoot?: string;
  clock?: Clock;
  /** Open pagemap fds kept at most (least recently opened closed first). */
  maxOpenFds?: number;
}

export class ProcPagemapReader implements PagemapBulkReader {
  private readonly procRoot: string;
  private readonly clock: Clock;
  private readonly maxOpenFds: number;
  private readonly fds = new Map<number, number>();
  private buf = Buffer.alloc(8 * 64);
  private pfnScratch = new Float64Array(64);
  private stateScratch = new Uint8Array(64);

  constructor(opts: ProcPagemapReaderOptions = {}) {
    this.procRoot = opts.procRoot ?? '/proc';
    this.clock = opts.clock ?? systemClock;
    this.maxOpenFds = opts.maxOpenFds ?? 512;
  }

  read(pid: number, addr: number, count: number): PagemapRead[] {
    if (this.pfnScratch.length < count) {
      this.pfnScratch = new Float64Array(count);
      this.stateScratch = new Uint8Array(count);
    }
    const err = this.readInto(pid, addr, count, this.pfnScratch, this.stateScratch, 0);
    const ts = this.clock.nowNs();
    const out: PagemapRead[] = new Array(count);
    for (let i = 0; i < count; i++) {
      out[i] = toPagemapRead(ts, pid, addr + i * PAGE_SIZE, this.pfnScratch[i], this.stateScratch[i], err);
    }
    return out;
  }

  readInto(pid: number, addr: number, count: number, pfnOut: Float64Array, stateOut: Uint8Array, offset: number): string | null {
    if (count <= 0) return null;
    const fd = this.fdFor(pid);
    if (typeof fd === 'string') return fd;
    const bytes = count * 8;
    if (this.buf.length < bytes) this.buf = Buffer.alloc(Math.max(bytes, this.buf.length * 2));
    let got: number;
    try {
      got = readSync(fd, this.buf, 0, bytes, (addr / PAGE_SIZE) * 8);
    } catch (err) {
      this.release(pid);
      return errnoText(err);
    }
    // pagemap_read returns 0 once the mm is gone (the process exited while we held the fd).
    if (got === 0) {
      this.release(pid);
      return `${GONE} (mm released)`;
    }
    const n = Math.floor(got / 8);
    for (let i = 0; i < count; i++) {
      if (i >= n) {
        pfnOut[offset + i] = NaN;
        stateOut[offset + i] = 0;
        continue;
      }
      const lo = this.buf.readUInt32LE(i * 8);
      const hi = this.buf.readUInt32LE(i * 8 + 4);
      const present = hi >>> 31 === 1;
      const swapped = ((hi >>> 30) & 1) === 1;
      // bits 0-54: the pfn when present (swap type/offset when swapped).
      const pfn = (hi & 0x7fffff) * TWO32 + lo;
      const hidden = present && pfn === 0;
      pfnOut[offset + i] = present && !hidden ? pfn : NaN;
      stateOut[offset + i] = (present ? PM_PRESENT : 0) | (swapped ? PM_SWAPPED : 0) | (hidden ? PM_HIDDEN : 0);
    }
    return null;
  }

  release(pid: number): void {
    const fd = this.fds.get(pid);
    if (fd === undefined) return;
    this.fds.delete(pid);
    try {
      closeSync(fd);
    } catch {
      /* already closed */
    }
  }

  close(): void {
    for (const pid of [...this.fds.keys()]) this.release(pid);
  }

  private fdFor(pid: number): number | string {
    const cached = this.fds.get(pid);
    if (cached !== undefined) return cached;
    let fd: number;
    try {
      fd = openSync(`${this.procRoot}/${pid}/pagemap`, 'r');
    } catch (err) {
      return errnoText(err);
    }
    if (this.fds.size >= this.maxOpenFds) {
      const oldest = this.fds.keys().next().value;
      if (oldest !== undefined) this.release(oldest);
    }
    this.fds.set(pid, fd);
    return fd;
  }
}

function errnoText(err: unknown): string {
  const code = (err as NodeJS.ErrnoException).code ?? 'EIO';
  if (code === 'ENOENT' || code === 'ESRCH') return `${GONE} (${code})`;
  return `${code}: ${(err as Error).message}`;
}
