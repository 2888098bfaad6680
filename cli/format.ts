// What the CLI prints: one line per anomaly (grep-friendly key=value), the ready line, the end-of-record summary.
import type { Anomaly } from '../schema/anomalies.ts';
import type { RuleInfo } from '../schema/anomalies.ts';
import type { ProbeStatus } from '../schema/session.ts';

function hex(n: number | null): string {
  return n === null || !Number.isFinite(n) ? '?' : `0x${n.toString(16)}`;
}

/** A value safe to put after `key=`: quoted when it has spaces or quotes. */
function word(s: string): string {
  return /^[^\s"=]+$/.test(s) ? s : JSON.stringify(s);
}

/**
 * `anomaly seq=3 critical pin-pte-divergence pid=4242 comm=qemu addr=0x7f0000001000 len=4096 confirmed=yes
 *  pfn=0x1a2b->0x3c4d pin=7 — summary`
 */
export function formatAnomalyLine(a: Anomaly): string {
  const parts = [
    'anomaly',
    `seq=${a.seq}`,
    a.severity,
    a.rule,
    `pid=${a.pid}`,
    `comm=${word(a.comm)}`,
    `addr=${hex(a.addr)}`,
    `len=${a.len}`,
    `confirmed=${a.confirmed ? 'yes' : 'no'}`,
  ];
  if (a.pfn !== null || a.newPfn !== null) parts.push(`pfn=${hex(a.pfn)}->${hex(a.newPfn)}`);
  if (a.pinId !== null) parts.push(`pin=${a.pinId}`);
  if (a.lowConfidence) parts.push('low-confidence');
  const summary = a.summary.replace(/\s+/g, ' ').trim();
  return summary ? `${parts.join(' ')} — ${summary}` : parts.join(' ');
}

/** `pinwatch: ready — 14 scripts attached, 2 left out (kprobe/cow: tracepoint mode; …)` */
export function formatReadyLine(mode: string, probes: ProbeStatus[], db: string): string {
  const attached = probes.filter((p) => p.attached).length;
  const out = probes.filter((p) => !p.attached);
  // Group by reason: in tracepoint mode every kprobe script is left out for the same one.
  const byReason = new Map<string, string[]>();
  for (const p of out) {
    const why = p.reason ?? 'not attached';
    byReason.set(why, [...(byReason.get(why) ?? []), p.script]);
  }
  const groups = [...byReason].map(([why, names]) =>
    names.length <= 2 ? `${names.join(', ')}: ${why}` : `${names.length} scripts (${names[0]}, …): ${why}`,
  );
  const left = out.length ? `, ${out.length} left out (${groups.join('; ')})` : '';
  return `pinwatch: ready — ${attached} script${attached === 1 ? '' : 's'} attached in ${mode} mode${left}; recording to ${db}`;
}

/** `pinwatch rules`: id, severity, title in aligned columns. */
export function formatRules(rules: readonly RuleInfo[]): string {
  const idW = Math.max(4, ...rules.map((r) => r.id.length));
  const sevW = Math.max(8, ...rules.map((r) => r.severity.length));
  const lines = [`${'RULE'.padEnd(idW)}  ${'SEVERITY'.padEnd(sevW)}  TITLE`];
  for (const r of rules) lines.push(`${r.id.padEnd(idW)}  ${r.severity.padEnd(sevW)}  ${r.title}`);
  return lines.join('\n');
}
