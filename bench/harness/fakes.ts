// Stand-ins for /proc in the in-process benchmarks (ingest replay, memory): the recorded or synthetic pids do
// not exist on this host, so pagemap and maps are answered from arithmetic, with no per-call allocation
// beyond what the PagemapReader contract itself returns and no call log (the test/support doubles keep one,
// which would grow without bound over 10M events).
import type { PagemapRead } from '../../schema/anomalies.ts';
import { PAGE_SIZE } from '../../schema/kernel.ts';
import type { PagemapBulkReader } from '../../collector/verify/pagemap.ts';
import { PM_PRESENT } from '../../collector/verify/pagemap.ts';
import type { Mapping, MapsReader } from '../../collector/model/maps.ts';

/** Every page of every process is present, at a pfn derived from (pid, addr): stable across reads. */
export class SyntheticPagemap implements PagemapBulkReader {
  reads = 0;
  pages = 0;

  private pfnOf(pid: number, addr: number): number {
    return ((addr / PAGE_SIZE) % 0x4000000) + (pid % 64) * 0x4000000;
  }

  readInto(pid: number, addr: number, count: number, pfnOut: Float64Array, stateOut: Uint8Array, offset: number): string | null {
    this.reads++;
    this.pages += count;
    for (let i = 0; i < count; i++) {
      pfnOut[offset + i] = this.pfnOf(pid, addr + i * PAGE_SIZE);
      stateOut[offset + i] = PM_PRESENT;
    }
    return null;
  }

  read(pid: number, addr: number, count: number): PagemapRead[] {
    this.reads++;
    this.pages += count;
    const out: PagemapRead[] = [];
    for (let i = 0; i < count; i++) {
      const a = addr + i * PAGE_SIZE;
      out.push({ tsNs: 0, pid, addr: a, present: true, swapped: false, pfn: this.pfnOf(pid, a) });
    }
    return out;
  }

  release(): void {}
}

const ANON_EVERYWHERE: Mapping[] = [{ start: 0, end: 2 ** 47, perms: 'rw-p', shared: false, path: '', backing: 'anon' }];

/** Every address of every process is private anonymous memory (what the recorded workloads pin). */
export class AnonMaps implements MapsReader {
  read(): Mapping[] {
    return ANON_EVERYWHERE;
  }
}
