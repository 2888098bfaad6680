// What this host can trace, and which bpf/ scripts to run on it.
//
// probeCapabilities() looks at the host (root, bpftrace, tracefs, BTF, kprobes, every tracepoint and field the
// scripts use, kprobe symbols); selectScripts() turns that into the list of scripts to compose, leaving out
// (with the reason) those whose probes or fields are missing.
//
// What a script needs is read from its text, so it cannot drift from the code:
//   - every attach point of its probe blocks (tracepoint:cat:name, kprobe:fn, ...) is required, and every
//     `args->field` a tracepoint block reads must be a field of that tracepoint's format;
//   - header lines may refine it (the kprobe scripts' convention, accepted in both folders):
//       // probes: a b c          attach points (replaces the ones read from the text)
//       // optional: a b          may be missing (the kprobe set prunes them from the text itself)
//       // any-of: a b            at least one of them must exist
//       // depends-any: tracepoint/x tracepoint/y   left out unless one of these scripts is selected
//                                (close.bt reads the map the io_uring/vmsplice scripts fill)
//       // pinwatch-template: faults   not part of the always-on set (FaultWatcher template)
import { execFile } from 'node:child_process';
import { accessSync, constants, existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { release } from 'node:os';
import { delimiter, join } from 'node:path';
import { promisify } from 'node:util';
import type { ScriptSpec } from '../contracts.ts';
import type { ProbeStatus, TraceMode } from '../../schema/session.ts';
import { pruneProbes, scriptProbes, tracepointFields, type ScriptInput } from '../runner/program.ts';

const run = promisify(execFile);

export const BPF_DIR = new URL('../../bpf/', import.meta.url).pathname;
export const TRACEFS = '/sys/kernel/tracing';
export const KPROBE_PMU = '/sys/bus/event_source/devices/kprobe/type';
export const BTF_VMLINUX = '/sys/kernel/btf/vmlinux';
/** The runner's ready sentinel (collector/runner/program.ts): every program needs it. */
export const SENTINEL_PROBE = 'tracepoint:syscalls:sys_enter_kill';
export const SENTINEL_FIELDS = ['pid', 'sig'];

export interface TracepointCap {
  exists: boolean;
  /** Field names from the format file (common_* excluded). */
  fields: string[];
}

export interface Capabilities {
  root: boolean;
  kernelRelease: string;
  arch: string;
  bpftrace: { path: string; version: string } | null;
  /** Why bpftrace is unusable, when it is. */
  bpftraceError?: string;
  tracefs: { path: string; mounted: boolean; mountedByUs: boolean; error?: string };
  btf: boolean;
  /** kprobes can attach: the kprobe PMU exists (`bpftrace --info` says yes even when it does not). */
  kprobes: boolean;
  /** Every tracepoint the scripts (and the runner's sentinel) use, keyed 'cat:name'. */
  tracepoints: Record<string, TracepointCap>;
  /** Every kprobe symbol the kprobe scripts use: present in /proc/kallsyms? (empty when kprobes are unavailable.) */
  kprobeSymbols: Record<string, boolean>;
  /** The scripts found under bpf/ (both folders). */
  scripts: ScriptInfo[];
}

export interface ScriptInfo {
  spec: ScriptSpec;
  /** tracepoint attach point → fields its blocks read. */
  fields: Record<string, string[]>;
  optional: string[];
  anyOf: string[][];
  dependsAny: string[];
  /** A template (FaultWatcher), not part of the always-on program. */
  template: string | null;
  /** First header line. */
  summary: string;
  /** The script text the needs were read from. */
  text: string;
}

const HEADER_RE = /^\/\/\s*(probes|optional|any-of|depends-any|pinwatch-template):\s*(.*)$/;

/** Read one script's needs from its text. */
export function describeScript(file: string, mode: 'tracepoint' | 'kprobe', text = readFileSync(file, 'utf8')): ScriptInfo {
  const base = file.split('/').pop()!.replace(/\.bt$/, '');
  const name = `${mode}/${base}`;
  let headerProbes: string[] | null = null;
  const optional: string[] = [];
  const anyOf: string[][] = [];
  const dependsAny: string[] = [];
  let template: string | null = null;
  let summary = '';
  for (const line of text.split('\n')) {
    const t = line.trim();
    if (!t.startsWith('//')) {
      if (t === '' || t.startsWith('#')) continue;
      break;
    }
    if (!summary) summary = t.replace(/^\/\/\s*/, '');
    const m = HEADER_RE.exec(t);
    if (!m) continue;
    const words = m[2].split(/\s+/).filter(Boolean);
    if (m[1] === 'probes') (headerProbes ??= []).push(...words);
    else if (m[1] === 'optional') optional.push(...words);
    else if (m[1] === 'any-of') anyOf.push(words);
    else if (m[1] === 'depends-any') dependsAny.push(...words);
    else template = words[0] ?? 'template';
  }
  const fromText = scriptProbes(text);
  const probes = headerProbes ?? fromText;
  const fields: Record<string, string[]> = {};
  for (const [tp, f] of tracepointFields(text)) fields[tp] = f;
  return { spec: { name, file, mode, probes }, fields, optional, anyOf, dependsAny, template, summary, text };
}

/** Every script under bpf/tracepoint and bpf/kprobe (sorted by name). */
export function listScripts(bpfDir = BPF_DIR): ScriptInfo[] {
  const out: ScriptInfo[] = [];
  for (const mode of ['tracepoint', 'kprobe'] as const) {
    const dir = join(bpfDir, mode);
    if (!existsSync(dir)) continue;
    for (const f of readdirSync(dir).filter((x) => x.endsWith('.bt')).sort()) out.push(describeScript(join(dir, f), mode));
  }
  return out;
}

/** Field names of a tracepoint format file. */
export function parseFormatFields(format: string): string[] {
  const out: string[] = [];
  for (const m of format.matchAll(/field:([^;]*);/g)) {
    const decl = m[1].trim().replace(/\[[^\]]*\]\s*$/, '');
    const name = /([A-Za-z_]\w*)\s*$/.exec(decl)?.[1];
    if (name && !name.startsWith('common_')) out.push(name);
  }
  return out;
}

function findOnPath(cmd: string): string | null {
  if (cmd.includes('/')) return existsSync(cmd) ? cmd : null;
  for (const d of (process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin').split(delimiter)) {
    const p = join(d, cmd);
    try {
      accessSync(p, constants.X_OK);
      if (statSync(p).isFile()) return p;
    } catch {
      // not here
    }
  }
  return null;
}

function tracefsReady(path: string): boolean {
  return existsSync(join(path, 'events'));
}

export interface ProbeOptions {
  bpftrace?: string;
  bpfDir?: string;
  /** Mount tracefs at /sys/kernel/tracing when missing and root (default true). */
  mountTracefs?: boolean;
  tracefsPath?: string;
  kallsymsPath?: string;
}

export async function probeCapabilities(opts: ProbeOptions = {}): Promise<Capabilities> {
  const root = typeof process.getuid === 'function' && process.getuid() === 0;
  const tracefsPath = opts.tracefsPath ?? TRACEFS;

  // bpftrace
  let bpftrace: Capabilities['bpftrace'] = null;
  let bpftraceError: string | undefined;
  const path = findOnPath(opts.bpftrace ?? 'bpftrace');
  if (!path) bpftraceError = 'not found on PATH';
  else {
    try {
      const { stdout, stderr } = await run(path, ['--version'], { timeout: 10_000 });
      const v = /v?(\d+\.\d+(?:\.\d+)?\S*)/.exec(stdout + stderr);
      bpftrace = { path, version: v ? v[1] : (stdout + stderr).trim() };
    } catch (e) {
      bpftraceError = `${path} --version failed: ${(e as Error).message}`;
    }
  }

  // tracefs
  const tracefs: Capabilities['tracefs'] = { path: tracefsPath, mounted: tracefsReady(tracefsPath), mountedByUs: false };
  if (!tracefs.mounted && root && opts.mountTracefs !== false) {
    try {
      await run('mount', ['-t', 'tracefs', 'nodev', tracefsPath], { timeout: 10_000 });
      tracefs.mounted = tracefsReady(tracefsPath);
      tracefs.mountedByUs = tracefs.mounted;
    } catch (e) {
      tracefs.error = `mount -t tracefs nodev ${tracefsPath}: ${(e as Error).message.trim()}`;
    }
  }

  const scripts = listScripts(opts.bpfDir);
  const tracepoints: Record<string, TracepointCap> = {};
  const wanted = new Set<string>([SENTINEL_PROBE]);
  const symbols = new Set<string>();
  for (const s of scripts) {
    for (const p of [...s.spec.probes, ...s.optional, ...s.anyOf.flat()]) {
      if (p.startsWith('tracepoint:')) wanted.add(p);
      const sym = kprobeSymbol(p);
      if (sym) symbols.add(sym);
    }
  }
  for (const p of wanted) {
    const [, cat, name] = p.split(':');
    const key = `${cat}:${name}`;
    const fmt = join(tracefsPath, 'events', cat, name, 'format');
    try {
      tracepoints[key] = { exists: true, fields: parseFormatFields(readFileSync(fmt, 'utf8')) };
    } catch {
      tracepoints[key] = { exists: false, fields: [] };
    }
  }

  const kprobes = existsSync(KPROBE_PMU);
  const kprobeSymbols: Record<string, boolean> = {};
  if (kprobes && symbols.size > 0) {
    const present = new Set<string>();
    try {
      const text = readFileSync(opts.kallsymsPath ?? '/proc/kallsyms', 'utf8');
      let i = 0;
      while (i < text.length) {
        const e = text.indexOf('\n', i);
        const line = text.slice(i, e < 0 ? text.length : e);
        i = e < 0 ? text.length : e + 1;
        const a = line.indexOf(' ', line.indexOf(' ') + 1);
        if (a < 0) continue;
        let nameEnd = line.indexOf('\t', a + 1);
        if (nameEnd < 0) nameEnd = line.length;
        const sym = line.slice(a + 1, nameEnd);
        if (symbols.has(sym)) present.add(sym);
      }
    } catch {
      // unreadable: every symbol reported missing
    }
    for (const s of symbols) kprobeSymbols[s] = present.has(s);
  }

  return {
    root,
    kernelRelease: release(),
    arch: process.arch,
    bpftrace,
    bpftraceError,
    tracefs,
    btf: existsSync(BTF_VMLINUX),
    kprobes,
    tracepoints,
    kprobeSymbols,
    scripts,
  };
}

/** Function name of a kprobe/kretprobe attach point; null for other probe types. */
export function kprobeSymbol(probe: string): string | null {
  const m = /^(?:kprobe|kretprobe):(?:[\w-]+:)?([\w.]+)$/.exec(probe.trim());
  return m ? m[1] : null;
}

/** Why one attach point cannot be used here; null when it can. */
export function probeProblem(caps: Capabilities, probe: string, fields: string[] = []): string | null {
  if (probe.startsWith('tracepoint:')) {
    const [, cat, name] = probe.split(':');
    const tp = caps.tracepoints[`${cat}:${name}`];
    if (!tp || !tp.exists) return `tracepoint ${cat}:${name} not found`;
    const missing = fields.filter((f) => !tp.fields.includes(f));
    if (missing.length) return `tracepoint ${cat}:${name} lacks field${missing.length > 1 ? 's' : ''} ${missing.join(', ')}`;
    return null;
  }
  const sym = kprobeSymbol(probe);
  if (sym !== null) {
    if (!caps.kprobes) return `kprobes cannot attach on this kernel (${KPROBE_PMU} missing)`;
    if (caps.kprobeSymbols[sym] !== true) return `symbol ${sym} not in /proc/kallsyms (inlined, renamed or absent)`;
    return null;
  }
  if (/^(kfunc|kretfunc|fentry|fexit):/.test(probe)) return caps.btf ? null : 'fentry needs BTF';
  return null; // interval, profile, uprobe...: not checked here
}

/** Why a script cannot run here; null when it can. */
export function scriptProblem(caps: Capabilities, s: ScriptInfo): string | null {
  const optional = new Set(s.optional);
  const inAnyOf = new Set(s.anyOf.flat());
  for (const p of s.spec.probes) {
    if (optional.has(p) || inAnyOf.has(p)) continue;
    const why = probeProblem(caps, p, s.fields[p] ?? []);
    if (why) return why;
  }
  for (const group of s.anyOf) {
    const ok = group.some((p) => probeProblem(caps, p, s.fields[p] ?? []) === null);
    if (!ok) return `none of ${group.join(', ')} available (${probeProblem(caps, group[0], s.fields[group[0]] ?? [])})`;
  }
  return null;
}

export type SelectMode = 'auto' | 'tracepoint' | 'kprobe';

export interface Selection {
  /** The mode used ('auto' resolved: kprobe when kprobes can attach, else tracepoint). */
  mode: Exclude<TraceMode, 'replay'>;
  /** In composition order. A script with missing `// optional:` probes carries its pruned `text`. */
  scripts: ScriptInput[];
  probes: ProbeStatus[];
}

/**
 * The scripts to compose for `mode`. tracepoint: bpf/tracepoint only. kprobe: bpf/kprobe *in addition to*
 * bpf/tracepoint (syscalls, fork/exit and khugepaged come from tracepoints in both modes). Templates are
 * never selected. Each left-out script is in `probes` with attached: false and the reason.
 */
export function selectScripts(caps: Capabilities, mode: SelectMode, opts: { exclude?: string[] } = {}): Selection {
  const resolved: Selection['mode'] = mode === 'auto' ? (caps.kprobes ? 'kprobe' : 'tracepoint') : mode;
  const probes: ProbeStatus[] = [];
  const chosen: ScriptInfo[] = [];
  const sentinel = probeProblem(caps, SENTINEL_PROBE, SENTINEL_FIELDS);
  for (const s of caps.scripts) {
    if (s.template) continue;
    if (s.spec.mode === 'kprobe' && resolved !== 'kprobe') {
      const why = caps.kprobes ? 'tracepoint mode' : 'tracepoint mode (kprobes cannot attach on this kernel)';
      probes.push({ script: s.spec.name, attached: false, reason: why });
      continue;
    }
    if (opts.exclude?.includes(s.spec.name)) {
      probes.push({ script: s.spec.name, attached: false, reason: 'excluded by configuration' });
      continue;
    }
    const why = sentinel ? `runner sentinel unavailable: ${sentinel}` : scriptProblem(caps, s);
    if (why) probes.push({ script: s.spec.name, attached: false, reason: why });
    else chosen.push(s);
  }
  // depends-any: drop scripts none of whose providers made it (until nothing changes).
  let changed = true;
  while (changed) {
    changed = false;
    for (let i = chosen.length - 1; i >= 0; i--) {
      const s = chosen[i];
      if (s.dependsAny.length && !s.dependsAny.some((d) => chosen.some((c) => c.spec.name === d))) {
        chosen.splice(i, 1);
        probes.push({ script: s.spec.name, attached: false, reason: `needs one of ${s.dependsAny.join(', ')}` });
        changed = true;
      }
    }
  }
  const scripts: ScriptInput[] = [];
  for (const s of chosen) {
    const missing = s.optional.concat(s.anyOf.flat()).filter((p) => probeProblem(caps, p, s.fields[p] ?? []) !== null);
    if (missing.length === 0) {
      probes.push({ script: s.spec.name, attached: true });
      scripts.push(s.spec);
    } else {
      probes.push({ script: s.spec.name, attached: true, reason: `without ${missing.join(', ')}` });
      const text = pruneProbes(s.text, new Set(missing));
      scripts.push({ ...s.spec, probes: s.spec.probes.filter((p) => !missing.includes(p)), text });
    }
  }
  probes.sort((a, b) => a.script.localeCompare(b.script));
  return { mode: resolved, scripts, probes };
}
