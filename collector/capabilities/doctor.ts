// `pinwatch doctor`: one ✔/✕ line per host check (with the fix for each ✕), then one line per script
// (selected, or left out and why). ok is false when a required check fails; the CLI exits non-zero then.
import type { Capabilities, SelectMode, Selection } from './index.ts';
import { SENTINEL_FIELDS, SENTINEL_PROBE, probeCapabilities, probeProblem, selectScripts } from './index.ts';
import { BpftraceRunner } from '../runner/index.ts';

export interface DoctorLine {
  ok: boolean;
  label: string;
  detail: string;
  fix?: string;
  /** A failing required check makes the report fail (default true for host checks, false for scripts). */
  required?: boolean;
}

export interface DoctorReport {
  ok: boolean;
  lines: DoctorLine[];
  /** What was found, for callers that want more than the lines. */
  caps?: Capabilities;
  selection?: Selection;
}

export interface DoctorOptions {
  mode?: SelectMode;
  bpftrace?: string;
  /** Also start the selected program once and report how long attaching took (root + bpftrace; ~2–15 s). */
  attach?: boolean;
  /** For tests: use these capabilities instead of probing the host. */
  caps?: Capabilities;
}

export async function runDoctor(opts: DoctorOptions = {}): Promise<DoctorReport> {
  const caps = opts.caps ?? (await probeCapabilities({ bpftrace: opts.bpftrace }));
  const lines: DoctorLine[] = [];
  const add = (l: DoctorLine) => lines.push({ required: true, ...l });

  add({ ok: true, label: 'kernel', detail: `${caps.kernelRelease} (${caps.arch})` });
  add({
    ok: caps.root,
    label: 'root',
    detail: caps.root ? 'running as root' : `running as uid ${process.getuid?.() ?? '?'}: bpftrace and /proc/PID/pagemap pfns need root`,
    fix: 'run pinwatch as root (sudo)',
  });
  add({
    ok: caps.bpftrace !== null,
    label: 'bpftrace',
    detail: caps.bpftrace ? `${caps.bpftrace.path} v${caps.bpftrace.version}` : `not usable: ${caps.bpftraceError ?? 'not found'}`,
    fix: 'apt-get install -y bpftrace',
  });
  add({
    ok: caps.tracefs.mounted,
    label: 'tracefs',
    detail: caps.tracefs.mounted
      ? `${caps.tracefs.path}${caps.tracefs.mountedByUs ? ' (mounted by pinwatch)' : ''}`
      : `not mounted at ${caps.tracefs.path}${caps.tracefs.error ? `: ${caps.tracefs.error}` : ''}`,
    fix: `mount -t tracefs nodev ${caps.tracefs.path}`,
  });
  add({
    ok: caps.btf,
    label: 'BTF',
    detail: caps.btf ? '/sys/kernel/btf/vmlinux' : '/sys/kernel/btf/vmlinux missing: curtask->mm and kprobe argument types need it',
    fix: 'use a kernel built with CONFIG_DEBUG_INFO_BTF=y (most distribution kernels since 5.x)',
  });
  const sentinel = probeProblem(caps, SENTINEL_PROBE, SENTINEL_FIELDS);
  add({
    ok: sentinel === null,
    label: 'syscall tracepoints',
    detail: sentinel === null ? `${SENTINEL_PROBE} (ready sentinel) present` : `${sentinel}: nothing can start`,
    fix: 'use a kernel built with CONFIG_FTRACE_SYSCALLS=y',
  });
  add({
    ok: caps.kprobes,
    label: 'kprobes',
    detail: caps.kprobes
      ? 'attachable (kprobe PMU present): kprobe mode available'
      : 'not attachable (/sys/bus/event_source/devices/kprobe/type missing): tracepoint mode only',
    fix: 'optional: a kernel with CONFIG_KPROBES/CONFIG_KPROBE_EVENTS adds COW/unmap/GUP visibility',
    required: false,
  });
  const pf = probeProblem(caps, 'tracepoint:exceptions:page_fault_user', ['address', 'error_code', 'ip']);
  add({
    ok: pf === null,
    label: 'fault watcher',
    detail: pf === null ? 'exceptions:page_fault_user present (faults in pinned regions)' : `${pf}: no fault events (arm64 has none)`,
    fix: 'optional: x86-64 or riscv kernels have exceptions:page_fault_user',
    required: false,
  });

  const selection = selectScripts(caps, opts.mode ?? 'auto');
  add({
    ok: selection.scripts.length > 0,
    label: 'scripts',
    detail: `mode ${selection.mode}: ${selection.scripts.length} selected, ${selection.probes.filter((p) => !p.attached).length} left out`,
    fix: 'see the per-script lines below',
  });
  const byName = new Map(caps.scripts.map((s) => [s.spec.name, s]));
  for (const p of selection.probes) {
    const info = byName.get(p.script);
    lines.push({
      ok: p.attached,
      label: p.script,
      detail: p.attached ? `selected (${info?.spec.probes.length ?? 0} probes${p.reason ? `; ${p.reason}` : ''})` : `left out: ${p.reason}`,
      required: false,
    });
  }

  if (opts.attach && caps.root && caps.bpftrace && selection.scripts.length > 0) {
    const runner = new BpftraceRunner({
      scripts: selection.scripts,
      bpftrace: caps.bpftrace.path,
      tag: 'doctor',
      sink: { event() {}, lost() {}, ready() {}, malformed() {} },
    });
    try {
      await runner.start();
      add({ ok: true, label: 'attach', detail: `all ${selection.scripts.length} scripts attached in ${runner.startMs} ms` });
    } catch (e) {
      add({ ok: false, label: 'attach', detail: (e as Error).message, fix: 'see bpftrace error above; leave the failing script out (--exclude)' });
    } finally {
      await runner.stop();
    }
  }

  const ok = lines.every((l) => l.ok || l.required === false);
  return { ok, lines, caps, selection };
}

/** Human text: one ✔/✕ line per check, the fix under each failing one. */
export function formatDoctor(report: DoctorReport): string {
  const out: string[] = [];
  let inScripts = false;
  for (const l of report.lines) {
    const isScript = /^(tracepoint|kprobe)\//.test(l.label);
    if (isScript && !inScripts) {
      out.push('scripts:');
      inScripts = true;
    }
    const optional = !l.ok && l.required === false && !isScript ? ' (optional)' : '';
    out.push(`${isScript ? '  ' : ''}${l.ok ? '✔' : '✕'} ${l.label}${optional} — ${l.detail}${!l.ok && l.fix ? ` — ${l.fix}` : ''}`);
  }
  out.push(report.ok ? 'ok: pinwatch can run here' : 'NOT OK: a required check failed (✕ lines without "optional")');
  return out.join('\n');
}
