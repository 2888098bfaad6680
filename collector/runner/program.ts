// The bpftrace program text: reading scripts' probe blocks, and composing several scripts into ONE
// program (one process, one ordered stream) with the runner's ready sentinel and a map-clearing END.
//
// Why a sentinel and not BEGIN: bpftrace 0.17 runs BEGIN *before* it attaches the regular probes
// (BPFtrace::run: BEGIN_trigger(), then attach; seen here: a madvise probe's first event came 11–41 ms
// after BEGIN's printf while a loop called madvise continuously). So "all probes attached" is marked by
// a probe on sys_enter_kill, declared LAST: tracepoints are attached in declaration order, so when it
// fires every tracepoint before it is attached. The runner pings it with kill(MAGIC, 0) (a pid above
// PID_MAX_LIMIT: ESRCH, no effect) until the `ready` line arrives. kprobe/kfunc/usdt/software probes are
// attached after all others in REVERSE order; when a program has any, a kprobe sentinel on the kill
// syscall's handler is declared FIRST (attached last) and the tracepoint sentinel only prints once the
// kprobe one has fired (untested here: this machine has no kprobes).
import { readFileSync } from 'node:fs';
import { SENT_MAP, type ScriptSpec, type WatchSeed } from '../contracts.ts';

/** A ScriptSpec whose text may be given directly (templates, per-kernel variants) instead of read from `file`. */
export type ScriptInput = ScriptSpec & { text?: string };

export interface ProbeBlock {
  /** Offsets in the source: [start, end) of the whole block. */
  start: number;
  end: number;
  /** Attach points, e.g. ['tracepoint:syscalls:sys_enter_madvise']. */
  attach: string[];
  /** Body text between the braces. */
  body: string;
}

export interface ParsedScript {
  /** Preprocessor lines (#define, #include) and C struct definitions: must precede all probes. */
  definitions: string[];
  blocks: ProbeBlock[];
}

function lineEnd(src: string, i: number): number {
  const e = src.indexOf('\n', i);
  return e < 0 ? src.length : e + 1;
}

/** Index just past the brace matching src[open] === '{' (strings and comments skipped). */
function matchBrace(src: string, open: number): number {
  let depth = 0;
  for (let i = open; i < src.length; i++) {
    const c = src[i];
    if (c === '"') {
      i++;
      while (i < src.length && src[i] !== '"') {
        if (src[i] === '\\') i++;
        i++;
      }
      continue;
    }
    if (c === '/' && src[i + 1] === '/') {
      i = lineEnd(src, i) - 1;
      continue;
    }
    if (c === '/' && src[i + 1] === '*') {
      const e = src.indexOf('*/', i + 2);
      i = e < 0 ? src.length : e + 1;
      continue;
    }
    if (c === '{') depth++;
    else if (c === '}') {
      depth--;
      if (depth === 0) return i + 1;
    }
  }
  throw new Error('unbalanced braces in bpftrace program');
}

/** Top-level structure of a bpftrace script: definitions and probe blocks (attach list, /predicate/, {body}). */
export function parseScript(src: string): ParsedScript {
  const definitions: string[] = [];
  const blocks: ProbeBlock[] = [];
  let i = 0;
  let itemStart = -1;
  let listEnd = -1;
  const n = src.length;
  while (i < n) {
    const c = src[i];
    if (c === '/' && src[i + 1] === '/') {
      i = lineEnd(src, i);
      continue;
    }
    if (c === '/' && src[i + 1] === '*') {
      const e = src.indexOf('*/', i + 2);
      i = e < 0 ? n : e + 2;
      continue;
    }
    if (itemStart < 0 && c === '#' && (i === 0 || src[i - 1] === '\n')) {
      const e = lineEnd(src, i);
      definitions.push(src.slice(i, e).trimEnd());
      i = e;
      continue;
    }
    if (itemStart < 0 && src.startsWith('struct', i) && /\s/.test(src[i + 6] ?? '')) {
      // struct definition: `struct name { ... };`
      const open = src.indexOf('{', i);
      const close = matchBrace(src, open);
      const semi = src.indexOf(';', close);
      definitions.push(src.slice(i, semi + 1));
      i = semi + 1;
      continue;
    }
    if (/\s/.test(c)) {
      i++;
      continue;
    }
    if (itemStart < 0) itemStart = i;
    if (c === '/' && listEnd < 0) {
      // predicate: up to the next '/' outside parentheses
      listEnd = i;
      let depth = 0;
      i++;
      while (i < n && !(src[i] === '/' && depth === 0)) {
        if (src[i] === '(') depth++;
        else if (src[i] === ')') depth--;
        i++;
      }
      i++;
      continue;
    }
    if (c === '{') {
      if (listEnd < 0) listEnd = i;
      const end = matchBrace(src, i);
      const attach = src
        .slice(itemStart, listEnd)
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean);
      blocks.push({ start: itemStart, end, attach, body: src.slice(i + 1, end - 1) });
      i = end;
      itemStart = -1;
      listEnd = -1;
      continue;
    }
    i++;
  }
  return { definitions, blocks };
}

/** Attach points of a script other than BEGIN/END. */
export function scriptProbes(src: string): string[] {
  const out: string[] = [];
  for (const b of parseScript(src).blocks) for (const a of b.attach) if (a !== 'BEGIN' && a !== 'END' && !out.includes(a)) out.push(a);
  return out;
}

/** For each tracepoint a script attaches to, the `args->field` names its blocks read. */
export function tracepointFields(src: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  const re = /args->([A-Za-z_]\w*)/g;
  for (const b of parseScript(src).blocks) {
    const text = src.slice(b.start, b.end);
    const fields = [...new Set([...text.matchAll(re)].map((m) => m[1]))];
    for (const a of b.attach) {
      if (!a.startsWith('tracepoint:')) continue;
      const cur = out.get(a) ?? [];
      for (const f of fields) if (!cur.includes(f)) cur.push(f);
      out.set(a, cur);
    }
  }
  return out;
}

/**
 * Remove unavailable attach points from a script: a block keeps the attach points that exist, and disappears
 * when none is left (for `// optional:` probes, e.g. sys_enter_fork, which arm64 does not have).
 */
export function pruneProbes(src: string, missing: ReadonlySet<string>): string {
  let out = '';
  let at = 0;
  for (const b of parseScript(src).blocks) {
    const keep = b.attach.filter((a) => !missing.has(a));
    if (keep.length === b.attach.length) continue;
    out += src.slice(at, b.start);
    if (keep.length > 0) {
      // the attach list ends where the predicate or the body starts
      const head = src.slice(b.start, b.end);
      const listEnd = Math.min(...['/', '{'].map((c) => head.indexOf(c)).filter((i) => i >= 0));
      out += keep.join(',\n') + '\n' + head.slice(listEnd);
    }
    at = b.end;
  }
  return out + src.slice(at);
}

/** Probe types bpftrace 0.17 attaches after all others, in reverse declaration order. */
function attachesReverse(probe: string): boolean {
  return /^(kprobe|kfunc|fentry|usdt|software|s):/.test(probe);
}

export interface ComposeOptions {
  /** Tag the ready line carries (`ready\t<tag>\t<nsecs>`). */
  tag?: string;
  /** The pid value the runner pings with kill(pid, 0): above PID_MAX_LIMIT (2^22), unique per process. */
  sentinelPid?: number;
  /**
   * Count every event line in the kernel (SENT_MAP, per printed kind, a per-CPU count()) and print the counts
   * every second and at exit: the collector compares them with the lines that arrived, which is how events lost
   * in the perf buffer are told per kind (bpftrace 0.17 reports only a total). The main program does this.
   */
  countSent?: boolean;
}

/** `printf("kind\t` at the start of an event line: the kind is the first field of every line a script prints. */
const EVENT_PRINTF = /\bprintf\("([a-z][a-z0-9_]*)\\t/g;

/** Each event printf preceded by its in-kernel count (a statement before a statement: valid wherever it stands). */
export function countEventPrintfs(body: string): string {
  return body.replace(EVENT_PRINTF, (m, kind: string) => `@${SENT_MAP}["${kind}"] = count(); ${m}`);
}

export interface ComposedProgram {
  text: string;
  /** For each script, the program lines [from, to] (1-based, inclusive) its text occupies. (bpftrace 0.17's error
   *  locations do not count comment lines: do not map its line numbers through this.) */
  lineMap: { script: string; from: number; to: number }[];
  tag: string;
  sentinelPid: number;
}

export const DEFAULT_SENTINEL_PID = 0x40000000 + 0x5057; // 'PW'

function readScript(s: ScriptInput): string {
  return s.text ?? readFileSync(s.file, 'utf8');
}

/**
 * One bpftrace program from several scripts: definitions hoisted (deduplicated), the scripts' BEGIN bodies
 * merged into one BEGIN (bpftrace allows only one), each script's probe blocks in order, the ready
 * sentinel last, and an END that clears every map (so bpftrace does not print them at exit).
 */
export function composeDetailed(scripts: ScriptInput[], opts: ComposeOptions = {}): ComposedProgram {
  const tag = opts.tag ?? 'main';
  const sentinelPid = opts.sentinelPid ?? DEFAULT_SENTINEL_PID;
  if (!/^[\w./:#@-]+$/.test(tag)) throw new Error(`composeProgram: tag ${JSON.stringify(tag)} must be a plain word`);
  const defs: string[] = [];
  const begins: string[] = [];
  const ends: string[] = [];
  const parts: { name: string; text: string }[] = [];
  let reverse = false;
  for (const s of scripts) {
    const src = readScript(s);
    const parsed = parseScript(src);
    for (const d of parsed.definitions) if (!defs.includes(d)) defs.push(d);
    let body = '';
    for (const b of parsed.blocks) {
      if (b.attach.length === 1 && b.attach[0] === 'BEGIN') begins.push(`  // ${s.name}\n${b.body}`);
      else if (b.attach.length === 1 && b.attach[0] === 'END') ends.push(`  // ${s.name}\n${b.body}`);
      else {
        if (b.attach.some((a) => a === 'BEGIN' || a === 'END')) throw new Error(`${s.name}: BEGIN/END mixed with other probes`);
        if (b.attach.some(attachesReverse)) reverse = true;
        body += src.slice(b.start, b.end) + '\n\n';
      }
    }
    parts.push({ name: s.name, text: opts.countSent ? countEventPrintfs(body) : body });
  }

  const out: string[] = [];
  const lineMap: ComposedProgram['lineMap'] = [];
  let line = 1;
  const push = (text: string) => {
    out.push(text);
    line += text.split('\n').length - 1;
  };
  push(`// pinwatch composed program (tag ${tag}): ${scripts.map((s) => s.name).join(', ')}\n`);
  for (const d of defs) push(d + '\n');
  if (begins.length > 0) push(`BEGIN\n{\n${begins.join('\n')}\n}\n\n`);
  const ksym = process.arch === 'arm64' ? '__arm64_sys_kill' : '__x64_sys_kill';
  if (reverse) {
    // Declared first among reverse-attached probes → attached last of all (see header).
    push(`kprobe:${ksym} /pid == ${process.pid}/\n{\n  @pw_sentinel_k = 1;\n}\n\n`);
  }
  for (const p of parts) {
    push(`// ---- script: ${p.name} ----\n`);
    const from = line;
    push(p.text);
    lineMap.push({ script: p.name, from, to: line });
  }
  const kGate = reverse ? ' && @pw_sentinel_k == 1' : '';
  push(
    `// ---- ready sentinel: attached last; the runner pings it with kill(${sentinelPid}, 0) ----\n` +
      `tracepoint:syscalls:sys_enter_kill\n/args->sig == 0 && args->pid == ${sentinelPid} && @pw_sentinel == 0${kGate}/\n{\n` +
      `  @pw_sentinel = 1;\n  printf("ready\\t%s\\t%llu", "${tag}", nsecs);\n}\n\n`,
  );
  const counting = opts.countSent === true && parts.some((p) => p.text.includes(`@${SENT_MAP}[`));
  if (counting) push(`// ---- per-kind event counts, compared with what arrives (lost events per kind) ----\ninterval:s:1\n{\n  print(@${SENT_MAP});\n}\n\n`);
  const text0 = out.join('');
  const maps = [...new Set([...text0.matchAll(/@([A-Za-z_]\w*)/g)].map((m) => m[1]))].sort();
  const finalCounts = counting ? `  print(@${SENT_MAP});\n` : '';
  push(`END\n{\n${ends.join('\n')}${ends.length ? '\n' : ''}${finalCounts}${maps.map((m) => `  clear(@${m});`).join('\n')}\n}\n`);
  return { text: out.join(''), lineMap, tag, sentinelPid };
}

/** The composed program text (see composeDetailed). */
export function composeProgram(scripts: ScriptInput[], opts: ComposeOptions = {}): string {
  return composeDetailed(scripts, opts).text;
}

/** At most this many seeded map entries (BEGIN stays small and compiles fast). */
const MAX_SEED = 4096;

/**
 * A BEGIN-only script telling a freshly started program (at start and at every restart) what the last one had
 * learned and what /proc shows: @pw_watch[pid] = 2 for processes holding pins (the model's, and discover's
 * watchPids: VmPin/VmLck, io_uring buffers, VFIO/iommufd/RDMA devices) — their zaps and remaps (munmap.bt,
 * madvise.bt, …), forks and exits are printed — and @pw_watchfd[pid, fd] for their pin fds (close.bt). The
 * spans the last program widened for processes that pin nothing yet go back too: @pw_bspan (captured shared-file
 * and hugetlb mappings, mmap_backing.bt) and @pw_fspan / @pw_fkn (DONTFORK/WIPEONFORK ranges, madvise.bt), so
 * unmaps over what the model keeps are still printed and its ranges do not go stale across a restart. Only maps
 * the other scripts use are written.
 */
export function watchSeedScript(seed: WatchSeed, scripts: readonly ScriptInput[]): ScriptInput {
  const uses = (map: string) => scripts.some((s) => (s.text ?? safeReadText(s.file)).includes(map));
  const int = (...n: number[]) => n.every((x) => Number.isSafeInteger(x) && x >= 0);
  const lines: string[] = [];
  const pinning = new Set<number>();
  if (uses('@pw_watch[')) {
    for (const pid of seed.pids.slice(0, MAX_SEED)) {
      if (!int(pid) || pid === 0) continue;
      pinning.add(pid);
      lines.push(`  @pw_watch[${pid}] = 2;`);
    }
  }
  if (uses('@pw_watchfd[')) {
    for (const [pid, fd] of seed.fds.slice(0, MAX_SEED)) if (int(pid, fd) && pid > 0) lines.push(`  @pw_watchfd[${pid}, ${fd}] = 1;`);
  }
  if (uses('@pw_bspan[')) {
    for (const [pid, lo, hi] of (seed.backingSpans ?? []).slice(0, MAX_SEED)) {
      if (!int(pid, lo, hi) || pid === 0 || hi <= lo) continue;
      lines.push(`  @pw_bspan[${pid}] = ((uint64)${lo}, (uint64)${hi});`, `  @pw_mmb[${pid}] = 1;`);
    }
  }
  if (uses('@pw_fspan[')) {
    for (const [pid, lo, hi, ranges] of (seed.forkAdviceSpans ?? []).slice(0, MAX_SEED)) {
      if (!int(pid, lo, hi, ranges) || pid === 0 || hi <= lo) continue;
      lines.push(`  @pw_fspan[${pid}] = ((uint64)${lo}, (uint64)${hi});`, `  @pw_fkn[${pid}] = ${ranges};`);
      if (!pinning.has(pid)) lines.push(`  @pw_watch[${pid}] = 1;`);
    }
  }
  return { name: 'runner/watch-seed', file: '', mode: 'tracepoint', probes: [], text: `BEGIN\n{\n${lines.join('\n')}\n}\n` };
}

function safeReadText(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}

/**
 * The composed program with the in-kernel zap/remap filter on (the default: munmap, MAP_FIXED, mremap, shmdt and
 * madvise printed only for processes that pin, see bpf/tracepoint/README.md "Volume") or off (every process's:
 * the program before the filter, for the bench's side-by-side figure). Definitions are hoisted and deduplicated
 * by composeDetailed, so the one `#define PW_ZAP_FILTER` line decides for every script.
 */
export function setZapFilter(text: string, on: boolean): string {
  return text.replace(/^#define PW_ZAP_FILTER .*$/m, `#define PW_ZAP_FILTER ${on ? 1 : 0}`);
}
