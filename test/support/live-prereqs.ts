// Shared gate for live tests (root + bpftrace + tracefs). Outside CI a missing prerequisite skips with the
// reason; under CI=true it is a failure, so a green CI always means the live tests ran against the kernel.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';

export function liveSkipReason(): string | null {
  if (process.getuid?.() !== 0) return 'live tests need root (bpftrace attaches tracepoints; pagemap pfns are hidden from non-root)';
  try {
    execFileSync('bpftrace', ['--version'], { stdio: 'pipe' });
  } catch {
    return 'bpftrace not found (apt-get install -y bpftrace)';
  }
  if (!existsSync('/sys/kernel/tracing/events') && !existsSync('/sys/kernel/debug/tracing/events')) {
    return 'tracefs not mounted (mount -t tracefs nodev /sys/kernel/tracing)';
  }
  return null;
}

/** `{ skip }` option for node:test: a reason outside CI, an exception inside it. */
export function liveGate(): { skip: string | false } {
  const reason = liveSkipReason();
  if (reason && process.env.CI === 'true') throw new Error(`CI=true and a live prerequisite is missing: ${reason}`);
  return { skip: reason ?? false };
}
