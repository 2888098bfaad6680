// Debian's Prometheus tools (apt-get install prometheus prometheus-alertmanager): promtool for the rule tests,
// prometheus and alertmanager for the fleet test. Outside CI a missing tool skips with the fix; under CI=true it
// fails (.ci/run installs them).
import { execFileSync } from 'node:child_process';

const FIX = 'apt-get install -y --no-install-recommends prometheus prometheus-alertmanager';

export function toolMissing(...tools: string[]): string | null {
  for (const t of tools) {
    try {
      execFileSync(t, [t === 'ip' ? '-V' : '--version'], { stdio: 'pipe' });
    } catch {
      return `${t} not found (${FIX})`;
    }
  }
  return null;
}

/** `{ skip }` for node:test; throws under CI=true when a tool is missing. */
export function toolGate(...tools: string[]): { skip: string | false } {
  const reason = toolMissing(...tools);
  if (reason && process.env.CI === 'true') throw new Error(`CI=true and a prerequisite is missing: ${reason}`);
  return { skip: reason ?? false };
}

export function promtool(args: string[], input?: string): { code: number; out: string } {
  try {
    const out = execFileSync('promtool', args, { encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'], input });
    return { code: 0, out };
  } catch (err) {
    const e = err as { status?: number; stdout?: string; stderr?: string };
    return { code: e.status ?? 1, out: `${e.stdout ?? ''}${e.stderr ?? ''}` };
  }
}
