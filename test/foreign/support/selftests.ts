// The kernel's own mm selftests (cow.c, gup_longterm.c), built at test time from Debian's linux-source
// package against liburing-dev — never copied into this repository. Only the files they need are extracted
// from /usr/src/linux-source-X.Y.tar.xz into a cache outside the checkout ($XDG_CACHE_HOME or ~/.cache,
// /pinwatch/foreign/<tarball>), built once per tarball, and reused.
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

const SELFTEST_FILES = ['kselftest.h', 'mm/cow.c', 'mm/gup_longterm.c', 'mm/vm_util.c', 'mm/vm_util.h', 'mm/thp_settings.c', 'mm/thp_settings.h'];
/** Newer uapi than Debian 12's linux-libc-dev (6.1): vm_util.c uses PAGEMAP_SCAN (6.7). */
const UAPI_FILES = ['fs.h', 'memfd.h', 'mman.h', 'userfaultfd.h'];

export interface Selftests {
  cow: string;
  gupLongterm: string;
  /** linux-source-6.12 */
  source: string;
}

/** Why the selftests cannot be built here (a missing package), or null. */
export function selftestsMissing(): string | null {
  if (!findTarball()) return 'no /usr/src/linux-source-*.tar.xz with tools/testing/selftests/mm (apt-get install linux-source-6.12)';
  if (!existsSync('/usr/include/liburing.h')) return 'liburing headers missing (apt-get install liburing-dev)';
  return null;
}

/** The newest linux-source tarball (the mm selftests moved from vm/ to mm/ in 6.3: 6.1's is not usable). */
function findTarball(): string | null {
  let names: string[];
  try {
    names = readdirSync('/usr/src').filter((n) => /^linux-source-(\d+)\.(\d+)\.tar\.xz$/.test(n));
  } catch {
    return null;
  }
  const version = (n: string) => {
    const m = /(\d+)\.(\d+)/.exec(n)!;
    return Number(m[1]) * 1000 + Number(m[2]);
  };
  const usable = names.filter((n) => version(n) >= 6005).sort((a, b) => version(b) - version(a));
  return usable.length ? join('/usr/src', usable[0]) : null;
}

function cacheRoot(): string {
  return join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'pinwatch', 'foreign');
}

/** Extract (once) and build cow and gup_longterm; returns their paths. */
export function buildSelftests(): Selftests {
  const tarball = findTarball();
  if (!tarball) throw new Error(selftestsMissing()!);
  const source = tarball.replace(/^.*\/|\.tar\.xz$/g, '');
  const root = join(cacheRoot(), source);
  const mm = join(root, source, 'tools/testing/selftests/mm');
  const cow = join(mm, 'cow');
  const gupLongterm = join(mm, 'gup_longterm');
  if (existsSync(cow) && existsSync(gupLongterm)) return { cow, gupLongterm, source };
  mkdirSync(root, { recursive: true });
  const members = [
    ...SELFTEST_FILES.map((f) => `${source}/tools/testing/selftests/${f}`),
    `${source}/mm/gup_test.h`,
    ...UAPI_FILES.map((f) => `${source}/include/uapi/linux/${f}`),
  ];
  execFileSync('tar', ['-xJf', tarball, '-C', root, ...members], { stdio: 'pipe' });
  const uapi = join(root, 'uapi/linux');
  mkdirSync(uapi, { recursive: true });
  for (const f of UAPI_FILES) copyFileSync(join(root, source, 'include/uapi/linux', f), join(uapi, f));
  // What the selftests' Makefile generates with check_config.sh when liburing is installed.
  writeFileSync(join(mm, 'local_config.h'), '#define LOCAL_CONFIG_HAVE_LIBURING 1\n');
  const cc = (out: string, srcs: string[]) =>
    execFileSync('cc', ['-O2', '-w', '-I', join(root, 'uapi'), '-o', out, ...srcs, '-luring', '-lpthread'], { cwd: mm, stdio: 'pipe' });
  cc(cow, ['cow.c', 'vm_util.c', 'thp_settings.c']);
  cc(gupLongterm, ['gup_longterm.c', 'vm_util.c']);
  return { cow, gupLongterm, source };
}

/**
 * A copy of `binary` named `name` (at most 15 characters: the comm every process of the run carries, forks
 * included), so the recording's anomalies of this run are told from other processes' by comm.
 */
export function namedCopy(binary: string, name: string): string {
  const dir = join(cacheRoot(), 'bin');
  mkdirSync(dir, { recursive: true });
  const dest = join(dir, name);
  copyFileSync(binary, dest);
  execFileSync('chmod', ['755', dest]);
  return dest;
}
