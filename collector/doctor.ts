// `pinwatch doctor`: one ✔/✕ line per host check (with the fix for each ✕), then one line per script
// (selected, or left out and why). ok is false when a required check fails; the CLI exits non-zero then.
// In kprobe mode the kprobe scripts are shown as record runs them (collector/kprobe: kallsyms, BTF
// signatures, optional probes pruned), each with one line per probe; without kprobes, one line says so
// and what tracepoint mode covers instead.
import type { Capabilities, SelectMode, Selection } from './capabilities/index.ts';
import { KPROBE_PMU, SENTINEL_FIELDS, SENTINEL_PROBE, probeCapabilities, probeProblem, selectScripts } from './capabilities/index.ts';
import type { ScriptInput } from './runner/program.ts';
import { BpftraceRunner } from './runner/index.ts';
import type { KprobeHost, KprobeScriptPlan } from './kprobe/index.ts';
import { sourceCoverage } from '../schema/pin-sources.ts';

const countOf = (n: number, noun: string) => `${n} ${noun}${n === 1 ? '' : 's'}`;

export interface DoctorLine {
  ok: boolean;
  label: string;
  detail: string;
  fix?: string;
  /** A failing required check makes the report fail (default true for host checks, false for scripts). */
  required?: boolean;
  /** One probe of the script line above it (kprobe set), printed under it. */
  probe?: boolean;
  /** Not ok but expected (an optional probe this kernel does not have): printed with '·', not '✕'. */
  neutral?: boolean;
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
  /** For tests: the kprobe view of the host (kallsyms, BTF) instead of reading it. */
  kprobeHost?: KprobeHost;
}

/** What the tracepoint set sees when the kprobe set cannot run, and what only kprobes see. */
export const TRACEPOINT_COVERAGE =
  'tracepoint mode covers io_uring/vmsplice/VFIO registrations (pfns from pagemap), zaps, remaps, fork, faults in pinned ' +
  'regions, khugepaged, KSM, reclaim and migration; it cannot see do_wp_page copies, try_to_unmap, GUP pfns or mmu-notifier invalidations';

/** Doctor lines for the kprobe set as record --mode kprobe would run it: one per script, one per probe under it. */
export function kprobePlanLines(plans: KprobeScriptPlan[], probeText: (state: KprobeScriptPlan['probes'][number]['state']) => string): DoctorLine[] {
  const lines: DoctorLine[] = [];
  for (const p of plans) {
    const pruned = p.probes.filter((r) => r.state === 'pruned').length;
    lines.push({
      ok: p.usable,
      label: p.header.name,
      detail: p.usable
        ? `selected (${countOf(p.attached.length, 'probe')}${pruned ? `, ${pruned} optional not here` : ''}): ${p.header.what}`
        : `left out: ${p.reason}`,
      required: false,
    });
    for (const r of p.probes) {
      lines.push({ ok: r.state === 'ok', neutral: r.state === 'pruned' || undefined, label: r.probe, detail: probeText(r.state), required: false, probe: true });
    }
  }
  return lines;
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
    detail: pf === null ? 'exceptions:page_fault_user present (attached only for armed pins: a pinned page zapped, or a fork sharing pinned pages where the kernel can COW them)' : `${pf}: no fault events (arm64 has none)`,
    fix: 'optional: x86-64 or riscv kernels have exceptions:page_fault_user',
    required: false,
  });

  const selection = selectScripts(caps, opts.mode ?? 'auto');
  const byName = new Map(caps.scripts.map((s) => [s.spec.name, s]));
  const kprobeScripts = caps.scripts.filter((s) => s.spec.mode === 'kprobe').length;
  const scriptLines: DoctorLine[] = [];
  let selected = selection.scripts.filter((s) => s.mode !== 'kprobe').length;
  let leftOut = selection.probes.filter((p) => !p.attached && !p.script.startsWith('kprobe/')).length;
  for (const p of selection.probes) {
    if (p.script.startsWith('kprobe/')) continue;
    const info = byName.get(p.script);
    scriptLines.push({
      ok: p.attached,
      label: p.script,
      detail: p.attached ? `selected (${countOf(info?.spec.probes.length ?? 0, 'probe')}${p.reason ? `; ${p.reason}` : ''})` : `left out: ${p.reason}`,
      required: false,
    });
  }
  let kprobePlans: KprobeScriptPlan[] | null = null;
  let kprobeHost: KprobeHost | null = null;
  if (kprobeScripts > 0 && selection.mode === 'kprobe' && caps.kprobes) {
    const kprobe = await import('./kprobe/index.ts');
    kprobeHost = opts.kprobeHost ?? kprobe.detectKprobeHost();
    kprobePlans = kprobe.planKprobeScripts(kprobeHost, {
      vmemmapBase: kprobe.VMEMMAP_BASE_DEFAULT,
      pageStructSize: kprobeHost.btf?.structSize('page') ?? 64,
    });
    selected += kprobePlans.filter((p) => p.usable).length;
    leftOut += kprobePlans.filter((p) => !p.usable).length;
    scriptLines.push({ ok: true, label: 'kprobe/*', detail: kprobe.kprobeHostSummary(kprobeHost), required: false });
    scriptLines.push(...kprobePlanLines(kprobePlans, kprobe.probeStateText));
  } else if (kprobeScripts > 0) {
    leftOut += kprobeScripts;
    scriptLines.push({
      ok: false,
      label: `kprobe/* (${kprobeScripts} scripts)`,
      detail: caps.kprobes
        ? `not used: --mode tracepoint (auto or --mode kprobe runs them); ${TRACEPOINT_COVERAGE}`
        : `left out: kprobes cannot attach on this kernel (${KPROBE_PMU} missing); ${TRACEPOINT_COVERAGE}`,
      required: false,
    });
  }
  add({
    ok: selected > 0,
    label: 'scripts',
    detail: `mode ${selection.mode}: ${selected} selected, ${leftOut} left out`,
    fix: 'see the per-script lines below',
  });
  lines.push(...scriptLines);
  // Per pin source: seen in this mode or not, and why (schema/pin-sources.ts). In kprobe mode a driver entry
  // point whose module is not loaded leaves that caller unnamed.
  const kprobeOk = kprobePlans ? new Set(kprobePlans.filter((p) => p.usable).flatMap((p) => p.attached)) : undefined;
  for (const c of sourceCoverage(selection.mode, kprobeOk)) {
    lines.push({ ok: c.seen, label: `source ${c.source}`, detail: `${c.label}: ${c.detail}`, required: false });
  }

  if (opts.attach && caps.root && caps.bpftrace && selection.scripts.length > 0) {
    let scripts: ScriptInput[] = selection.scripts.filter((s) => s.mode !== 'kprobe');
    if (kprobePlans) {
      // as record runs them: specialised for this kernel, vmemmap calibrated (bpftrace, a few seconds)
      const kprobe = await import('./kprobe/index.ts');
      Object.assign(process.env, kprobe.bpftraceEnv());
      const set = await kprobe.prepareKprobeSet({ bpftrace: caps.bpftrace.path, host: kprobeHost ?? undefined });
      scripts = [...scripts, ...set.specs];
    }
    const runner = new BpftraceRunner({
      scripts,
      bpftrace: caps.bpftrace.path,
      tag: 'doctor',
      sink: { event() {}, lost() {}, ready() {}, malformed() {} },
    });
    try {
      await runner.start();
      add({ ok: true, label: 'attach', detail: `all ${scripts.length} scripts attached in ${runner.startMs} ms` });
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
    if (l.probe) {
      out.push(`      ${l.ok ? '✔' : l.neutral ? '·' : '✕'} ${l.label} — ${l.detail}`);
      continue;
    }
    const optional = !l.ok && l.required === false && !isScript ? ' (optional)' : '';
    out.push(`${isScript ? '  ' : ''}${l.ok ? '✔' : '✕'} ${l.label}${optional} — ${l.detail}${!l.ok && l.fix ? ` — ${l.fix}` : ''}`);
  }
  out.push(report.ok ? 'ok: pinwatch can run here' : 'NOT OK: a required check failed (✕ lines without "optional")');
  return out.join('\n');
}
