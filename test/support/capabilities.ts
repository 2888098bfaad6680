// Fake host capabilities for unit tests: every tracepoint the real scripts use exists with exactly the fields
// they read, plus the runner's sentinel; kprobes and kprobe symbols as asked.
import { listScripts, type Capabilities } from '../../collector/capabilities/index.ts';

export function fakeCapabilities(o: { kprobes?: boolean; symbols?: string[]; kernelRelease?: string; allScripts?: boolean } = {}): Capabilities {
  const scripts = listScripts();
  const tracepoints: Capabilities['tracepoints'] = { 'syscalls:sys_enter_kill': { exists: true, fields: ['pid', 'sig'] } };
  for (const s of scripts) {
    for (const p of s.spec.probes) {
      if (!p.startsWith('tracepoint:')) continue;
      const key = p.split(':').slice(1).join(':');
      const cur = tracepoints[key] ?? { exists: true, fields: [] };
      for (const f of s.fields[p] ?? []) if (!cur.fields.includes(f)) cur.fields.push(f);
      tracepoints[key] = cur;
    }
  }
  return {
    root: true,
    kernelRelease: o.kernelRelease ?? '6.18.0-test',
    arch: 'x64',
    bpftrace: { path: '/usr/bin/bpftrace', version: '0.17.0' },
    tracefs: { path: '/sys/kernel/tracing', mounted: true, mountedByUs: false },
    btf: true,
    kprobes: o.kprobes ?? false,
    tracepoints,
    kprobeSymbols: Object.fromEntries((o.symbols ?? []).map((s) => [s, true])),
    scripts: o.allScripts ? scripts : scripts.filter((s) => s.spec.mode === 'tracepoint'),
  };
}
