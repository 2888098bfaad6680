// Kprobe mode at start-up: detect what this kernel offers (kprobes attachable, every probed symbol in
// kallsyms, signatures in BTF), choose and specialise the bpf/kprobe scripts for it (prune optional
// probes, pick signature variants, paste the calibrated vmemmap base) and say per probe what happened
// (`pinwatch doctor`). The runner runs the generated files: they carry the same `// probes:` header
// listing exactly the probes they attach.
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { release as osRelease, tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ScriptSpec } from '../contracts.ts';
import type { ProbeStatus } from '../../schema/session.ts';
import { Btf } from './btf.ts';
import { follNumbering, type FollNumbering } from './foll.ts';
import { readKallsyms, symbolState, type Kallsyms, type SymbolState } from './kallsyms.ts';
import { kprobeSymbol, loadKprobeScripts, pruneProbes, setDefine, setVariantLine, type KprobeScriptHeader } from './scripts.ts';
import { btfSignatureMismatch, variantLines } from './variants.ts';
import { calibrateVmemmap, VMEMMAP_BASE_DEFAULT, type VmemmapCalibration } from './vmemmap.ts';

export { Btf } from './btf.ts';
export { decodeFoll, follNames, follNumbering, kernelVersion, versionAtLeast } from './foll.ts';
export { parseKallsyms, symbolState } from './kallsyms.ts';
export { calibrateVmemmap, VMEMMAP_BASE_DEFAULT } from './vmemmap.ts';

export interface KprobeHost {
  release: string;
  /** /sys/bus/event_source/devices/kprobe/type exists (bpftrace --info claims kprobes even when not). */
  kprobesAttachable: boolean;
  kallsyms: Kallsyms;
  btf: Btf | null;
  /** Loaded module BTF is merged lazily for module functions (vfio, ib_core) when present. */
  tracepointExists: (category: string, name: string) => boolean;
}

export function detectKprobeHost(opts: { release?: string; kallsymsPath?: string; btfPath?: string } = {}): KprobeHost {
  let btf: Btf | null = null;
  try { btf = Btf.fromFile(opts.btfPath ?? '/sys/kernel/btf/vmlinux'); } catch { btf = null; }
  const tracefs = ['/sys/kernel/tracing/events', '/sys/kernel/debug/tracing/events'].find((d) => existsSync(d));
  return {
    release: opts.release ?? osRelease(),
    kprobesAttachable: existsSync('/sys/bus/event_source/devices/kprobe/type'),
    kallsyms: readKallsyms(opts.kallsymsPath),
    btf,
    // Without a readable tracefs assume tracepoints exist; bpftrace will say otherwise.
    tracepointExists: (cat, name) => !tracefs || existsSync(join(tracefs, cat, name)),
  };
}

/**
 * Environment for every bpftrace process running kprobe scripts. bpftrace 0.17's feature probe reports
 * "btf: no" on 5.10 (seen on Debian's 5.10.0-46) and then resolves no struct type in a kprobe cast
 * ("Unknown struct/union: 'struct vm_fault'"); naming the BTF file makes it use it. Harmless elsewhere.
 */
export function bpftraceEnv(btfPath = '/sys/kernel/btf/vmlinux'): Record<string, string> {
  return existsSync(btfPath) ? { BPFTRACE_BTF: btfPath } : {};
}

export type ProbeState = 'ok' | 'absent' | 'renamed' | 'no-kprobes' | 'pruned';

export interface ProbeReport {
  probe: string;
  state: ProbeState;
  optional: boolean;
}

export interface KprobeScriptPlan {
  header: KprobeScriptHeader;
  usable: boolean;
  /** Why not usable. */
  reason?: string;
  probes: ProbeReport[];
  /** Attach points of the specialised script. */
  attached: string[];
  /** Specialised text (when usable). */
  text?: string;
}

function probeState(host: KprobeHost, probe: string): Exclude<ProbeState, 'pruned'> {
  const sym = kprobeSymbol(probe);
  if (sym) {
    const s: SymbolState = symbolState(host.kallsyms, sym);
    if (s !== 'present') return s;
    return host.kprobesAttachable ? 'ok' : 'no-kprobes';
  }
  const tp = /^tracepoint:([\w]+):([\w]+)$/.exec(probe);
  if (tp) return host.tracepointExists(tp[1], tp[2]) ? 'ok' : 'absent';
  return 'ok';
}

export interface PlanOptions {
  vmemmapBase: bigint;
  pageStructSize?: number;
  scriptsDir?: string;
}

/** Decide, per script, whether it can run here and produce its specialised text. Pure given host. */
export function planKprobeScripts(host: KprobeHost, opts: PlanOptions): KprobeScriptPlan[] {
  const lines = variantLines(host.btf);
  return loadKprobeScripts(opts.scriptsDir).map(({ header, text }) => {
    const optional = new Set(header.optional);
    const anyOfMembers = new Set(header.anyOf.flat());
    const probes: ProbeReport[] = header.probes.map((p) => {
      const st = probeState(host, p);
      const opt = optional.has(p) || anyOfMembers.has(p);
      return { probe: p, state: st === 'ok' ? 'ok' : opt && st !== 'no-kprobes' ? 'pruned' : st, optional: opt };
    });
    const plan: KprobeScriptPlan = { header, usable: false, probes, attached: [] };
    if (!host.kprobesAttachable) { plan.reason = 'kprobes cannot attach here (no /sys/bus/event_source/devices/kprobe)'; return plan; }
    const missing = probes.filter((p) => !p.optional && p.state !== 'ok');
    if (missing.length) { plan.reason = `missing ${missing.map((p) => `${p.probe} (${p.state === 'absent' ? 'absent or inlined' : p.state})`).join(', ')}`; return plan; }
    for (const group of header.anyOf) {
      if (!group.some((p) => probes.find((r) => r.probe === p)?.state === 'ok')) { plan.reason = `none of ${group.join(' ')} present`; return plan; }
    }
    const mismatch = btfSignatureMismatch(header, host.btf);
    if (mismatch) { plan.reason = `signature differs: ${mismatch}`; return plan; }
    const ok = new Set(probes.filter((p) => p.state === 'ok').map((p) => p.probe));
    const known = new Set(header.probes);
    // Attach points not declared in the header (BEGIN/END) stay.
    let out = pruneProbes(text, (p) => !known.has(p) || ok.has(p)).text;
    out = setDefine(out, 'PW_VMEMMAP_BASE', `(uint64)0x${opts.vmemmapBase.toString(16)}`);
    out = setDefine(out, 'PW_PAGE_STRUCT_SIZE', `(uint64)${opts.pageStructSize ?? 64}`);
    out = setDefine(out, 'PW_FOLL_LONGTERM', `(uint64)0x${follNumbering(host.release, host.btf).LONGTERM.toString(16)}`);
    for (const [k, v] of Object.entries(lines)) out = setVariantLine(out, k, v);
    plan.attached = header.probes.filter((p) => ok.has(p));
    out = out.replace(/^\/\/ probes: .*$/m, `// probes: ${plan.attached.join(' ')}`);
    out = out.replace(/^\/\/ optional: .*\n/m, '');
    plan.usable = true;
    plan.text = out;
    return plan;
  });
}

export interface KprobeSet {
  /** Usable scripts, specialised for this kernel; `text` is the file's content (runner ScriptInput shape). */
  specs: (ScriptSpec & { text: string })[];
  statuses: ProbeStatus[];
  plans: KprobeScriptPlan[];
  vmemmap: VmemmapCalibration;
  foll: FollNumbering;
  release: string;
  dir: string;
}

/**
 * Everything the runner needs for `record --mode kprobe`: calibrates vmemmap (bpftrace, root), plans
 * the scripts, writes the usable ones to `dir` and returns them as ScriptSpecs (name 'kprobe/gup').
 */
export async function prepareKprobeSet(opts: { dir?: string; bpftrace?: string; host?: KprobeHost } = {}): Promise<KprobeSet> {
  const host = opts.host ?? detectKprobeHost();
  const pageStructSize = host.btf?.structSize('page') ?? 64;
  let vmemmap: VmemmapCalibration;
  if (host.kprobesAttachable) {
    vmemmap = await calibrateVmemmap({ bpftrace: opts.bpftrace, pageStructSize });
  } else {
    vmemmap = { base: VMEMMAP_BASE_DEFAULT, pageStructSize, method: 'default', samples: 0, ms: 0 };
  }
  const plans = planKprobeScripts(host, { vmemmapBase: vmemmap.base, pageStructSize });
  const dir = opts.dir ?? join(tmpdir(), `pinwatch-kprobe-${process.pid}`);
  mkdirSync(dir, { recursive: true });
  for (const f of readdirSync(dir)) if (f.endsWith('.bt')) writeFileSync(join(dir, f), ''); // stale scripts never run
  const specs: KprobeSet['specs'] = [];
  for (const p of plans) {
    if (!p.usable || !p.text) continue;
    const file = join(dir, `${p.header.name.slice('kprobe/'.length)}.bt`);
    writeFileSync(file, p.text);
    specs.push({ name: p.header.name, file, mode: 'kprobe', probes: p.attached, text: p.text });
  }
  const statuses: ProbeStatus[] = plans.map((p) => ({ script: p.header.name, attached: p.usable, ...(p.reason ? { reason: p.reason } : {}) }));
  return { specs, statuses, plans, vmemmap, foll: follNumbering(host.release, host.btf), release: host.release, dir };
}

/**
 * The usable scripts as ONE bpftrace program (definitions hoisted and deduplicated, blocks in order):
 * one bpftrace start-up instead of one per script, which matters in slow guests. Map names are unique
 * per script in bpf/kprobe, so the scripts do not interfere. (The product's runner composes its own.)
 */
export function combineKprobeScripts(plans: KprobeScriptPlan[]): string {
  const defs: string[] = [];
  const bodies: string[] = [];
  for (const p of plans) {
    if (!p.usable || !p.text) continue;
    const rest: string[] = [];
    for (const line of p.text.split('\n')) {
      if (line.startsWith('#')) { if (!defs.includes(line)) defs.push(line); }
      else rest.push(line);
    }
    bodies.push(`// ==== ${p.header.name} ====\n${rest.join('\n')}`);
  }
  const names = new Set(defs.map((d) => d.split(/\s+/)[1]));
  if (names.size !== defs.length) throw new Error(`conflicting #defines across kprobe scripts: ${defs.join(' | ')}`);
  return `${defs.join('\n')}\n\n${bodies.join('\n')}`;
}

/** One probe's state in words (doctor output). */
export function probeStateText(state: ProbeState): string {
  switch (state) {
    case 'ok': return 'ok';
    case 'pruned': return 'not here (optional, pruned)';
    case 'absent': return 'absent from kallsyms (inlined or not in this kernel)';
    case 'renamed': return 'only as .isra/.constprop (arguments unreliable)';
    default: return 'kprobes not attachable';
  }
}

/** The first line of the kprobe part of the doctor: kernel, kprobes, BTF, FOLL numbering. */
export function kprobeHostSummary(host: KprobeHost): string {
  return `kprobe mode on ${host.release}: kprobes ${host.kprobesAttachable ? 'attachable' : 'NOT attachable (no /sys/bus/event_source/devices/kprobe)'}, BTF ${host.btf ? 'yes' : 'no'}, FOLL numbering ${follNumbering(host.release, host.btf).GET === 0x2 ? '6.3+' : 'pre-6.3'}`;
}

/** Human table (collector/kprobe/cli.ts doctor): one line per script, then one per probe. */
export function formatKprobeDoctor(host: KprobeHost, plans: KprobeScriptPlan[]): string {
  const out: string[] = [kprobeHostSummary(host)];
  for (const p of plans) {
    out.push(`${p.usable ? 'ok  ' : 'SKIP'} ${p.header.name.padEnd(28)} ${p.usable ? p.header.what : p.reason}`);
    for (const r of p.probes) out.push(`       ${r.probe.padEnd(52)} ${probeStateText(r.state)}`);
  }
  return out.join('\n');
}
