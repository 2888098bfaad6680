// /proc/PID/maps: what kind of memory backs a pinned (or refused) range. The rules care about one
// distinction above all (seed 003, 6.5's writable_file_mapping_allowed): a writable long-term pin on a
// SHARED mapping of a regular file is a writeback hazard; anon, shmem (memfd, /dev/shm, SysV, shared
// anonymous) and hugetlb have no writeback and are fine; a PRIVATE file mapping is pinned through COW
// copies (anon pages), so it is fine too.
import { readFileSync } from 'node:fs';

export interface Mapping {
  start: number;
  end: number;
  /** 'rw-p' as printed. */
  perms: string;
  shared: boolean;
  /** Pathname column ('' for anonymous). */
  path: string;
  /** 'anon' | 'shmem' | 'file:<path>' (schema/pins.ts Pin.backing). */
  backing: string;
}

export interface MapsReader {
  /** The process's mappings in address order, or null when it is gone / unreadable. */
  read(pid: number): Mapping[] | null;
}

/** Classify a maps pathname (and whether the mapping is shared) into the Pin.backing vocabulary. */
export function classifyBacking(path: string, shared: boolean): string {
  if (path === '' || path.startsWith('[')) return 'anon'; // [heap], [stack], [anon:name], [vdso]...
  const p = path.endsWith(' (deleted)') ? path.slice(0, -' (deleted)'.length) : path;
  if (p.startsWith('/memfd:') || p.startsWith('/dev/shm/') || p.startsWith('/SYSV') || p === '/anon_hugepage') {
    return 'shmem';
  }
  // A shared anonymous mapping is shmem behind a "/dev/zero (deleted)" name; a private one is anon.
  if (p === '/dev/zero') return shared ? 'shmem' : 'anon';
  // anon_inode:[io_uring], anon_inode:[perf_event], ...: no filesystem, no writeback (seen: a ring's own mapping
  // reusing a freed buffer's address). Only a path is a file.
  if (!p.startsWith('/')) return 'special:' + p;
  return 'file:' + p;
}

/** Parse the text of /proc/PID/maps. Malformed lines are skipped. */
export function parseMaps(text: string): Mapping[] {
  const out: Mapping[] = [];
  let pos = 0;
  while (pos < text.length) {
    let nl = text.indexOf('\n', pos);
    if (nl < 0) nl = text.length;
    const line = text.slice(pos, nl);
    pos = nl + 1;
    // 7f1c2a000000-7f1c2a021000 rw-p 00000000 00:00 0          [heap]
    const dash = line.indexOf('-');
    const sp1 = line.indexOf(' ', dash);
    if (dash <= 0 || sp1 < 0) continue;
    const start = parseInt(line.slice(0, dash), 16);
    const end = parseInt(line.slice(dash + 1, sp1), 16);
    const perms = line.slice(sp1 + 1, sp1 + 5);
    if (!Number.isFinite(start) || !Number.isFinite(end) || perms.length !== 4) continue;
    // Skip offset, dev and inode: the pathname starts after the 5th field, padded with spaces.
    let i = sp1 + 5;
    for (let field = 0; field < 3; field++) {
      while (line[i] === ' ') i++;
      while (i < line.length && line[i] !== ' ') i++;
    }
    while (line[i] === ' ') i++;
    const path = line.slice(i);
    const shared = perms[3] === 's';
    out.push({ start, end, perms, shared, path, backing: classifyBacking(path, shared) });
  }
  return out;
}

export class ProcMapsReader implements MapsReader {
  constructor(private readonly procRoot = '/proc') {}

  read(pid: number): Mapping[] | null {
    try {
      return parseMaps(readFileSync(`${this.procRoot}/${pid}/maps`, 'utf8'));
    } catch {
      return null;
    }
  }
}

export interface RangeBacking {
  /** Pin.backing for the range: a shared regular-file mapping wins, else the first mapping's; 'unknown' if none. */
  backing: string;
  /** Some page of the range is a SHARED mapping of a regular file (not shmem/hugetlb): the seed-003 hazard. */
  sharedFile: boolean;
  /** Whether any mapping overlapped the range. */
  mapped: boolean;
  /** The (first) mapping is MAP_SHARED: a zap then refault maps the same page-cache page again. */
  mapShared: boolean;
}

export function backingOf(maps: readonly Mapping[] | null, start: number, end: number): RangeBacking {
  if (!maps) return { backing: 'unknown', sharedFile: false, mapped: false, mapShared: false };
  let first: Mapping | undefined;
  for (const m of maps) {
    if (m.end <= start) continue;
    if (m.start >= end) break;
    first ??= m;
    if (m.shared && m.backing.startsWith('file:')) return { backing: m.backing, sharedFile: true, mapped: true, mapShared: true };
  }
  return first
    ? { backing: first.backing, sharedFile: false, mapped: true, mapShared: first.shared }
    : { backing: 'unknown', sharedFile: false, mapped: false, mapShared: false };
}
