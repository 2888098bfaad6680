// Stopping a child the tests started (collector, dashboard server, Prometheus): a signal, then SIGKILL when it
// has not exited within the grace period, so a hung child fails its test instead of hanging the suite.
import type { ChildProcess } from 'node:child_process';

export async function stopChild<T>(
  child: ChildProcess,
  exited: Promise<T>,
  o: { signal?: NodeJS.Signals; graceMs?: number; onKill?: () => void } = {},
): Promise<T> {
  const signal = o.signal ?? 'SIGTERM';
  if (child.exitCode === null && child.signalCode === null) child.kill(signal);
  const timer = setTimeout(() => {
    o.onKill?.();
    child.kill('SIGKILL');
  }, o.graceMs ?? 30_000);
  try {
    return await exited;
  } finally {
    clearTimeout(timer);
  }
}
