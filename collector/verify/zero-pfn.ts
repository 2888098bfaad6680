// The shared zero page's pfn, learned once at start. A read fault on an untouched private anonymous page maps
// the zero page (do_anonymous_page), so every such page of every process shows the same pfn: it is nobody's
// page, and a pin holding it (before 6.2 a R/O FOLL_LONGTERM pin of an untouched page took it) shares that pfn
// with unrelated COWs all over the host. The model never attributes an event to a pin by this pfn.
// How: a 256 KiB WebAssembly memory of our own (its own vma, too small for a huge zero page), a marker written
// to its first page to find that vma in /proc/self/maps + /proc/self/mem, a read of its third page, then
// /proc/self/pagemap for the pfn and /proc/kpageflags to confirm it is KPF_ZERO_PAGE (both need root). Any
// doubt (not root, no zero page on this kernel or config, not found) is null: nothing is excluded then.
import { randomBytes } from 'node:crypto';
import { closeSync, openSync, readFileSync, readSync } from 'node:fs';
import { PAGE_SIZE } from '../../schema/kernel.ts';

const KPF_THP = 22n;
const KPF_ZERO_PAGE = 24n;
const PFN_MASK = (1n << 55n) - 1n;

function readU64(path: string, offset: number): bigint | null {
  let fd = -1;
  try {
    fd = openSync(path, 'r');
    const b = Buffer.alloc(8);
    return readSync(fd, b, 0, 8, offset) === 8 ? b.readBigUInt64LE() : null;
  } catch {
    return null;
  } finally {
    if (fd >= 0) closeSync(fd);
  }
}

/** The vma start of our own anonymous mapping that begins with `marker`. */
function findOwnMapping(marker: Buffer, procRoot: string): number | null {
  let fd = -1;
  try {
    fd = openSync(`${procRoot}/self/mem`, 'r');
    const b = Buffer.alloc(marker.length);
    for (const line of readFileSync(`${procRoot}/self/maps`, 'utf8').split('\n')) {
      const m = /^([0-9a-f]+)-[0-9a-f]+ rw-p 00000000 00:00 0\s*$/.exec(line);
      if (!m) continue;
      const start = parseInt(m[1], 16);
      try {
        if (readSync(fd, b, 0, b.length, start) === b.length && b.equals(marker)) return start;
      } catch {
        // an unreadable vma (guard pages): not ours
      }
    }
    return null;
  } catch {
    return null;
  } finally {
    if (fd >= 0) closeSync(fd);
  }
}

/** The zero page's pfn on this kernel, or null when it cannot be told for sure. */
export function learnZeroPfn(procRoot = '/proc'): number | null {
  const mem = new Uint8Array(new WebAssembly.Memory({ initial: 4 }).buffer); // 4 × 64 KiB
  const marker = randomBytes(16);
  mem.set(marker, 0);
  const probe = 2 * PAGE_SIZE;
  if (mem[probe] !== 0) return null; // read fault: maps the zero page where the kernel uses it
  const start = findOwnMapping(marker, procRoot);
  if (start === null) return null;
  const entry = readU64(`${procRoot}/self/pagemap`, ((start + probe) / PAGE_SIZE) * 8);
  if (entry === null || (entry >> 63n) === 0n) return null;
  const pfn = Number(entry & PFN_MASK);
  if (pfn === 0) return null; // not root: pagemap hides pfns
  const flags = readU64(`${procRoot}/kpageflags`, pfn * 8);
  if (flags === null || ((flags >> KPF_ZERO_PAGE) & 1n) === 0n || ((flags >> KPF_THP) & 1n) === 1n) return null;
  return pfn;
}
