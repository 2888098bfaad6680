// Builds the C workloads under bench/workloads with cc, on demand, into a cache directory outside the
// repository (keyed by the sources' hash, so an edited workload is rebuilt and an unchanged one is not).
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const WORKLOAD_DIR = fileURLToPath(new URL('../workloads/', import.meta.url));

export type WorkloadName = 'fault-heavy' | 'page-cache-heavy' | 'fork-heavy' | 'pin-holder' | 'zap-churn';

export function cacheRoot(): string {
  const base = process.env.PINWATCH_CACHE_DIR ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'pinwatch');
  return join(base, 'bench');
}

/** Path of the compiled workload, compiling it first if this version of its sources was never built. */
export function buildWorkload(name: WorkloadName): string {
  const src = join(WORKLOAD_DIR, `${name}.c`);
  const hash = createHash('sha256');
  hash.update(readFileSync(src));
  // Every header in the folder takes part: they are few and tiny, and this never misses an include.
  for (const h of readdirSync(WORKLOAD_DIR).filter((f) => f.endsWith('.h')).sort()) hash.update(readFileSync(join(WORKLOAD_DIR, h)));
  const dir = join(cacheRoot(), hash.digest('hex').slice(0, 16));
  const bin = join(dir, name);
  if (existsSync(bin)) return bin;
  mkdirSync(dir, { recursive: true });
  const tmp = `${bin}.tmp${process.pid}`;
  try {
    execFileSync(process.env.CC ?? 'cc', ['-O2', '-Wall', '-Wextra', '-Werror', '-o', tmp, src], { stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    const e = err as { stderr?: Buffer; message: string };
    throw new Error(`cannot build bench workload ${name}: ${e.stderr?.toString() || e.message}`);
  }
  renameSync(tmp, bin); // atomic: a concurrent run never executes a half-written binary
  return bin;
}
