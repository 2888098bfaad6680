// Runs bpftrace: BpftraceRunner (the always-on tracepoint/kprobe program: one process, one ordered stream)
// and FaultWatcher (a separate, restartable process filtering page faults to pinned regions).
// stdout goes through a pipe (never a pty: it would merge stderr), each line to collector/parse.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FaultRegion, ParseSink, ScriptSpec } from '../contracts.ts';
import type { TraceEvent } from '../../schema/events.ts';
import { parseLine, type ReadyAtSink } from '../parse/index.ts';
import { composeDetailed, type ComposedProgram, type ScriptInput } from './program.ts';

export { composeProgram, composeDetailed, parseScript, pruneProbes, scriptProbes, tracepointFields } from './program.ts';
export type { ScriptInput, ComposedProgram, ComposeOptions } from './program.ts';

export interface RunnerCounters {
  /** stdout lines read. */
  lines: number;
  /** Events handed to the sink. */
  events: number;
  malformed: number;
  /** Sum of bpftrace lost_events counts. */
  lost: number;
}

export interface RunnerOptions {
  scripts: ScriptInput[];
  sink: ParseSink;
  /** bpftrace binary (default: `bpftrace` on PATH). */
  bpftrace?: string;
  onStderr?: (line: string) => void;
  onExit?: (code: number | null, signal: string | null) => void;
  /** Ready-line tag (default 'main'). */
  tag?: string;
  /** Give up waiting for the ready line after this long (default 60 s: a large program compiles for ~10 s on a busy 2-core host). */
  startTimeoutMs?: number;
  /** SIGINT → SIGKILL grace in stop() (default 5 s). */
  stopTimeoutMs?: number;
  /** BPFTRACE_PERF_RB_PAGES per CPU (default 256 = 1 MiB; bpftrace's own default 64 loses events in bursts). */
  perfRbPages?: number;
  /** Extra environment for bpftrace (e.g. BPFTRACE_MAP_KEYS_MAX). */
  env?: Record<string, string>;
  /** Kill bpftrace when the collector dies (setpriv --pdeathsig; default true when setpriv is there). */
  pdeathsig?: boolean;
}

const RLIMIT_WARNING = /RLIMIT_MEMLOCK/;
/** A stdout line longer than this is not bpftrace output (ours are < 1 KiB): dropped and counted, never buffered whole. */
export const MAX_LINE_BYTES = 1 << 20;

let pdeathsigPrefix: string[] | null = null;
/**
 * `setpriv --pdeathsig KILL --` (util-linux) when this host has it: bpftrace then gets SIGKILL from the kernel
 * when the collector dies, even by SIGKILL (PR_SET_PDEATHSIG survives the exec; Node cannot set it itself).
 */
export function pdeathsigCommand(): string[] {
  if (pdeathsigPrefix === null) {
    try {
      const help = execFileSync('setpriv', ['--help'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
      pdeathsigPrefix = help.includes('--pdeathsig') ? ['setpriv', '--pdeathsig', 'KILL', '--'] : [];
    } catch {
      pdeathsigPrefix = [];
    }
  }
  return pdeathsigPrefix;
}

let sentinelSeq = 0;
/** A kill() target above PID_MAX_LIMIT (2^22): never a process, unique per runner in this collector. */
function nextSentinelPid(): number {
  sentinelSeq = (sentinelSeq + 1) & 0xfff;
  return 0x40000000 + ((process.pid & 0xfff) << 12) + sentinelSeq;
}

/**
 * The bpftrace process for a set of scripts. start() resolves once every probe is attached (the ready
 * sentinel fired); stop() ends it with SIGINT and drains stdout so no printed event is lost.
 */
export class BpftraceRunner {
  readonly counters: RunnerCounters = { lines: 0, events: 0, malformed: 0, lost: 0 };
  /** Stderr lines kept for diagnostics (the last 200). */
  readonly stderrLines: string[] = [];
  /** The RLIMIT_MEMLOCK warning bpftrace 0.17 prints here (harmless as root). */
  memlockWarning = false;
  /** CLOCK_MONOTONIC ns at which the ready sentinel fired (all probes attached). */
  readyTsNs: number | null = null;
  /** Wall ms from spawn to ready. */
  startMs: number | null = null;

  private readonly opts: RunnerOptions;
  private readonly composed: ComposedProgram;
  private child: ChildProcess | null = null;
  private dir: string | null = null;
  private partial = '';
  /** The current line passed MAX_LINE_BYTES: the rest of it is skipped. */
  private overlong = false;
  private closed: Promise<void> | null = null;
  private exitInfo: { code: number | null; signal: string | null } | null = null;
  private readonly wrapped: ParseSink & ReadyAtSink;
  private onReady: (() => void) | null = null;

  constructor(opts: RunnerOptions) {
    this.opts = opts;
    this.composed = composeDetailed(opts.scripts, { tag: opts.tag ?? 'main', sentinelPid: nextSentinelPid() });
    const out = opts.sink;
    const c = this.counters;
    const tag = this.composed.tag;
    this.wrapped = {
      event: (e: TraceEvent) => {
        c.events++;
        out.event(e);
      },
      lost: (n: number) => {
        c.lost += n;
        out.lost(n);
      },
      ready: (t: string) => {
        out.ready(t);
        if (t === tag && this.onReady) this.onReady();
      },
      readyAt: (t: string, ts: number) => {
        if (t === tag && this.readyTsNs === null) this.readyTsNs = ts;
        (out as ParseSink & ReadyAtSink).readyAt?.(t, ts);
      },
      malformed: (line: string, reason: string) => {
        c.malformed++;
        out.malformed(line, reason);
      },
      message: (text: string) => out.message?.(text),
    };
  }

  /** The composed bpftrace program. */
  get program(): string {
    return this.composed.text;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  get running(): boolean {
    return this.child !== null && this.exitInfo === null;
  }

  start(): Promise<void> {
    if (this.child) return Promise.reject(new Error('BpftraceRunner.start() called twice'));
    this.dir = mkdtempSync(join(tmpdir(), 'pinwatch-bt-'));
    const file = join(this.dir, 'program.bt');
    writeFileSync(file, this.composed.text);
    const t0 = Date.now();
    const env = {
      ...process.env,
      BPFTRACE_PERF_RB_PAGES: String(this.opts.perfRbPages ?? 256),
      ...this.opts.env,
    };
    const argv = [this.opts.bpftrace ?? 'bpftrace', '-f', 'json', '-q', '-B', 'line', file];
    const wrap = this.opts.pdeathsig === false ? [] : pdeathsigCommand();
    const cmd = [...wrap, ...argv];
    const child = spawn(cmd[0], cmd.slice(1), { stdio: ['ignore', 'pipe', 'pipe'], env });
    this.child = child;
    // If the collector exits without stop() (crash, process.exit), do not leave bpftrace attached: it would keep
    // tracing, and blocks once nobody reads its pipe. (A SIGKILLed collector cannot do this; bpftrace then dies
    // of EPIPE on its next write.)
    const killOnExit = () => {
      if (this.exitInfo === null) child.kill('SIGKILL');
    };
    process.once('exit', killOnExit);
    child.once('close', () => process.removeListener('exit', killOnExit));
    child.stdout!.setEncoding('utf8');
    child.stdout!.on('data', (chunk: string) => this.onStdout(chunk));
    let errPartial = '';
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (chunk: string) => {
      const parts = (errPartial + chunk).split('\n');
      errPartial = parts.pop() ?? '';
      for (const l of parts) this.onStderrLine(l);
    });
    this.closed = new Promise<void>((resolve) => {
      child.on('close', (code, signal) => {
        if (errPartial) this.onStderrLine(errPartial);
        this.flushPartial();
        this.exitInfo = { code, signal };
        if (this.dir) rmSync(this.dir, { recursive: true, force: true });
        this.dir = null;
        this.opts.onExit?.(code, signal);
        resolve();
      });
    });

    return new Promise<void>((resolve, reject) => {
      let done = false;
      const timeoutMs = this.opts.startTimeoutMs ?? 60_000;
      const ping = setInterval(() => {
        try {
          process.kill(this.composed.sentinelPid, 0);
        } catch {
          // ESRCH: expected, the probe sees the call anyway
        }
        if (Date.now() - t0 > timeoutMs) finish(new Error(`bpftrace not ready after ${timeoutMs} ms${this.stderrSummary()}`));
      }, 20);
      const finish = (err?: Error) => {
        if (done) return;
        done = true;
        clearInterval(ping);
        this.onReady = null;
        if (err) {
          if (this.running) child.kill('SIGKILL');
          reject(err);
        } else {
          this.startMs = Date.now() - t0;
          resolve();
        }
      };
      this.onReady = () => finish();
      child.on('error', (e) => finish(new Error(`cannot run ${this.opts.bpftrace ?? 'bpftrace'}: ${e.message}`)));
      void this.closed!.then(() => {
        if (!done) finish(new Error(this.explainEarlyExit()));
      });
    });
  }

  /** SIGINT, wait for exit (SIGKILL after the grace period), drain stdout. Safe to call twice. */
  async stop(): Promise<void> {
    const child = this.child;
    if (!child || !this.closed) return;
    if (this.exitInfo === null) {
      child.kill('SIGINT');
      const grace = this.opts.stopTimeoutMs ?? 5000;
      const timer = setTimeout(() => {
        if (this.exitInfo === null) child.kill('SIGKILL');
      }, grace);
      await this.closed;
      clearTimeout(timer);
    } else {
      await this.closed;
    }
  }

  /** Resolves when the process has exited (for whatever reason). */
  exited(): Promise<void> {
    return this.closed ?? Promise.resolve();
  }

  private onStdout(chunk: string): void {
    let start = 0;
    let nl = chunk.indexOf('\n');
    if (this.overlong) {
      // Inside a line already reported as too long: skip to its end.
      if (nl < 0) return;
      this.overlong = false;
      start = nl + 1;
      nl = chunk.indexOf('\n', start);
      if (nl < 0) {
        this.partial = chunk.slice(start);
        return;
      }
      chunk = chunk.slice(start);
      start = 0;
      nl = chunk.indexOf('\n');
    }
    if (nl < 0) {
      this.partial += chunk;
      if (this.partial.length > MAX_LINE_BYTES) this.dropOverlong();
      return;
    }
    const sink = this.wrapped;
    if (this.partial) {
      const first = this.partial + chunk.slice(0, nl);
      this.partial = '';
      this.counters.lines++;
      parseLine(first, sink);
      start = nl + 1;
      nl = chunk.indexOf('\n', start);
    }
    while (nl >= 0) {
      this.counters.lines++;
      parseLine(chunk.slice(start, nl), sink);
      start = nl + 1;
      nl = chunk.indexOf('\n', start);
    }
    if (start < chunk.length) {
      this.partial = chunk.slice(start);
      if (this.partial.length > MAX_LINE_BYTES) this.dropOverlong();
    }
  }

  private dropOverlong(): void {
    const head = this.partial.slice(0, 200);
    this.partial = '';
    this.overlong = true;
    this.counters.lines++;
    this.wrapped.malformed(head, `line longer than ${MAX_LINE_BYTES} bytes (dropped)`);
  }

  private flushPartial(): void {
    if (this.partial) {
      const l = this.partial;
      this.partial = '';
      this.counters.lines++;
      parseLine(l, this.wrapped);
    }
  }

  private onStderrLine(line: string): void {
    if (line === '') return;
    if (RLIMIT_WARNING.test(line)) this.memlockWarning = true;
    this.stderrLines.push(line);
    if (this.stderrLines.length > 200) this.stderrLines.shift();
    this.opts.onStderr?.(line);
  }

  private stderrSummary(): string {
    const lines = this.stderrLines.filter((l) => !RLIMIT_WARNING.test(l));
    return lines.length ? `\nbpftrace stderr:\n${lines.slice(-20).join('\n')}` : '';
  }

  /**
   * "bpftrace exited before ready": which script/probe failed and what bpftrace said. bpftrace 0.17's line
   * numbers do not count comment lines, so the culprit is found by name: the probe an error names ("not found:
   * cat:name"), or the source line bpftrace quotes under an ERROR, searched in each script's text.
   */
  private explainEarlyExit(): string {
    const lines = this.stderrLines.filter((l) => !RLIMIT_WARNING.test(l));
    const culprits = new Set<string>();
    const texts = this.opts.scripts.map((s) => ({ name: s.name, text: s.text ?? safeRead(s.file) }));
    lines.forEach((l, i) => {
      const p = /not found:\s*(\S+)/i.exec(l) ?? /(?:attach|Could not read|No such).*?((?:tracepoint|kprobe|kretprobe|kfunc|kretfunc):[\w:./-]+)/i.exec(l);
      if (p) {
        const probe = p[1];
        culprits.add(`probe ${probe}`);
        for (const t of texts) if (t.text.includes(probe)) culprits.add(`script ${t.name}`);
      }
      if (/ERROR/.test(l) && !p) {
        const src = (lines[i + 1] ?? '').trim();
        if (src && !/^~+$/.test(src)) for (const t of texts) if (t.text.includes(src)) culprits.add(`script ${t.name}`);
      }
    });
    const code = this.exitInfo ? (this.exitInfo.signal ?? `code ${this.exitInfo.code}`) : 'unknown status';
    const who = culprits.size ? ` (${[...culprits].join(', ')})` : '';
    return `bpftrace exited (${code}) before its probes were attached${who}${lines.length ? `:\n${lines.slice(-20).join('\n')}` : ''}`;
  }
}

function safeRead(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}

// ---------------------------------------------------------------------------------------------------------
// FaultWatcher

const FAULTS_TEMPLATE = new URL('../../bpf/tracepoint/faults.bt', import.meta.url).pathname;
const REGIONS_PLACEHOLDER = '// @@PINWATCH_REGIONS@@';
/** Above this many 2 MiB regions the in-kernel filter uses 1 GiB regions (BEGIN stays small and compiles fast). */
export const MAX_EXACT_REGIONS = 1024;
/** Two copies of the same fault (old and new process) can differ by a few µs in nsecs; matched within this. */
const DUP_WINDOW_NS = 100_000;

export interface FaultWatcherOptions {
  sink: ParseSink;
  bpftrace?: string;
  /** setRegions() debounce (default 50 ms). */
  debounceMs?: number;
  /** Template path (default bpf/tracepoint/faults.bt). */
  template?: string;
  onStderr?: (line: string) => void;
  /** Called after each (re)start or stop with how long it took. */
  onChange?: (info: { regions: number; ms: number; running: boolean }) => void;
  /** The running fault process died on its own (not stopped or replaced): call revive() to start another. */
  onDied?: (cause: string) => void;
}

const regionKey = (pid: number, region: number) => pid * 2 ** 32 + region; // region = addr >> 21 < 2^27

/** The BEGIN statements for a region set (exact 2 MiB keys, or 1 GiB keys above MAX_EXACT_REGIONS). */
export function regionStatements(regions: FaultRegion[]): string {
  const pids = new Set<number>();
  const lines: string[] = [];
  if (regions.length <= MAX_EXACT_REGIONS) {
    for (const r of regions) {
      pids.add(r.pid);
      lines.push(`  @pw_r21[${r.pid}, ${r.region}] = 1;`);
    }
  } else {
    const seen = new Set<number>();
    for (const r of regions) {
      pids.add(r.pid);
      const g = Math.floor(r.region / 512); // addr >> 30
      const k = regionKey(r.pid, g);
      if (seen.has(k)) continue;
      seen.add(k);
      lines.push(`  @pw_r30[${r.pid}, ${g}] = 1;`);
    }
  }
  for (const p of pids) lines.unshift(`  @pw_fpid[${p}] = 1;`);
  return lines.join('\n');
}

/**
 * Up to this many pinned pids, the predicate compares pid with constants instead of looking up @pw_fpid:
 * measured on 6.18 (1M faults of a process with no pins), the map lookup cost ~5% of the workload's time on
 * top of the tracepoint itself, a constant compare nothing measurable (docs/benchmarks.md).
 */
export const MAX_CONSTANT_PIDS = 8;
const PID_LOOKUP = '@pw_fpid[pid]';

/** The predicate's first test: pid against constants (few pids) or the @pw_fpid map. */
export function pidTest(regions: FaultRegion[]): string {
  const pids = [...new Set(regions.map((r) => r.pid))].sort((a, b) => a - b);
  if (pids.length === 0 || pids.length > MAX_CONSTANT_PIDS) return PID_LOOKUP;
  return '(' + pids.map((p) => `pid == ${p}`).join(' || ') + ')';
}

/** The faults.bt template with a region set substituted (BEGIN's map entries and the predicate's pid test). */
export function faultProgramText(regions: FaultRegion[], template = FAULTS_TEMPLATE): string {
  const t = readFileSync(template, 'utf8');
  const re = /^[ \t]*\/\/ @@PINWATCH_REGIONS@@[ \t]*$/m;
  if (!re.test(t)) throw new Error(`${template}: no "${REGIONS_PLACEHOLDER}" line`);
  const predicate = /^\/@pw_fpid\[pid\] && /m;
  if (!predicate.test(t)) throw new Error(`${template}: the predicate must start with "/${PID_LOOKUP} && "`);
  const stmts = regionStatements(regions);
  return t.replace(re, () => stmts).replace(predicate, () => `/${pidTest(regions)} && `);
}

interface Generation {
  id: number;
  runner: BpftraceRunner;
  regions: Set<number>;
  /** Accept faults with from <= tsNs < until. */
  from: number;
  until: number;
  /** Before this process's ready: its faults wait here (ts not yet comparable to the cutover). */
  pending: TraceEvent[] | null;
  /** During a handover: this (old) process's faults at or after `holdFrom` wait for the cutover. */
  held: TraceEvent[] | null;
  holdFrom: number;
}

/**
 * Page faults in pinned regions, from a bpftrace process that exists only while pins live. Every region change
 * starts a new process with the new filter, waits until it is attached, then stops the old one: no gap. A fault
 * both processes saw is delivered once: the old process's faults before the new one's ready timestamp, the new
 * one's from it (plus a µs-window match for the one fault that could straddle it).
 */
export class FaultWatcher {
  /** Wall ms of the last (re)start (spawn → ready) and stop. */
  lastStartMs: number | null = null;
  lastStopMs: number | null = null;
  restarts = 0;
  /** Faults dropped as duplicates of the other process during a handover. */
  duplicates = 0;
  lost = 0;

  private readonly opts: FaultWatcherOptions;
  private desired = new Map<number, FaultRegion>();
  private current: Generation | null = null;
  private timer: NodeJS.Timeout | null = null;
  private chain: Promise<void> = Promise.resolve();
  private gen = 0;
  private stopped = false;
  /** Faults delivered within DUP_WINDOW_NS of the last cutover, for the straddle check. */
  private recent: { gen: number; e: TraceEvent }[] = [];
  /** CLOCK_MONOTONIC ns of the last handover's cutover (0: none yet). */
  private lastCut = 0;
  private lastError: Error | null = null;
  private reviving = false;

  constructor(opts: FaultWatcherOptions) {
    this.opts = opts;
  }

  get running(): boolean {
    return this.current !== null;
  }

  get error(): Error | null {
    return this.lastError;
  }

  /** Replace the set of pinned regions (debounced). An empty set stops the fault process. */
  setRegions(regions: FaultRegion[]): void {
    if (this.stopped) return;
    this.desired = new Map(regions.map((r) => [regionKey(r.pid, r.region), r]));
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = null;
      this.chain = this.chain.then(() => this.apply()).catch((e: Error) => {
        this.lastError = e;
      });
    }, this.opts.debounceMs ?? 50);
  }

  /** Start a fault process for the current regions after the last one died; rejects when it cannot start. */
  revive(): Promise<void> {
    const p = this.chain.then(async () => {
      this.reviving = true;
      try {
        await this.apply();
      } finally {
        this.reviving = false;
      }
    });
    this.chain = p.catch((e: Error) => {
      this.lastError = e;
    });
    return p;
  }

  /** CLOCK_MONOTONIC ns at which the running fault process had its probe attached. */
  get readyTsNs(): number | null {
    return this.current?.runner.readyTsNs ?? null;
  }

  /** Pinned regions wanted now (0: no fault process needed). */
  get wantedRegions(): number {
    return this.desired.size;
  }

  /** Resolves when every pending setRegions() has been applied. */
  async settled(): Promise<void> {
    while (this.timer) await new Promise((r) => setTimeout(r, 5));
    await this.chain;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await this.chain;
    const g = this.current;
    this.current = null;
    if (g) {
      await g.runner.stop();
    }
  }

  private same(set: Set<number>): boolean {
    if (set.size !== this.desired.size) return false;
    for (const k of this.desired.keys()) if (!set.has(k)) return false;
    return true;
  }

  private async apply(): Promise<void> {
    if (this.stopped) return;
    const old = this.current;
    if (this.desired.size === 0) {
      if (!old) return;
      const t0 = Date.now();
      this.current = null;
      await old.runner.stop();
      this.lastStopMs = Date.now() - t0;
      this.opts.onChange?.({ regions: 0, ms: this.lastStopMs, running: false });
      return;
    }
    if (old && this.same(old.regions)) return;

    const regions = [...this.desired.values()];
    const id = ++this.gen;
    const g: Generation = {
      id,
      runner: null as unknown as BpftraceRunner,
      regions: new Set(this.desired.keys()),
      from: 0,
      until: Infinity,
      pending: old ? [] : null,
      held: null,
      holdFrom: Infinity,
    };
    g.runner = new BpftraceRunner({
      scripts: [{ name: 'tracepoint/faults', file: this.opts.template ?? FAULTS_TEMPLATE, mode: 'tracepoint', probes: [], text: faultProgramText(regions, this.opts.template) }],
      sink: this.genSink(g),
      bpftrace: this.opts.bpftrace,
      tag: `faults#${id}`,
      onStderr: this.opts.onStderr,
      perfRbPages: 64,
      onExit: (code, signal) => {
        // Stopped on purpose or replaced: this.current is already another generation (or null).
        if (this.stopped || this.current !== g) return;
        this.current = null;
        this.opts.onDied?.(`bpftrace exited (${signal ?? `code ${code}`})`);
      },
    });
    if (old) {
      // From now on the new process may see the old one's faults: hold those until the cutover is known.
      old.holdFrom = Number(process.hrtime.bigint());
      old.held = [];
    }
    const t0 = Date.now();
    try {
      await g.runner.start();
    } catch (e) {
      if (old) this.release(old, Infinity);
      // Not watching faults now: the owner backs off and revives (revive() reports its own failures).
      if (!this.stopped && !this.reviving && !old) this.opts.onDied?.(((e as Error)?.message ?? String(e)).split('\n')[0]);
      throw e;
    }
    this.lastStartMs = Date.now() - t0;
    this.restarts++;
    const cut = g.runner.readyTsNs ?? Number(process.hrtime.bigint());
    g.from = old ? cut : 0;
    this.current = g;
    if (old) {
      this.lastCut = cut;
      this.recent = [];
      this.release(old, cut);
      old.until = cut;
    }
    const pend = g.pending;
    g.pending = null;
    if (pend) for (const e of pend) this.deliver(g, e);
    this.opts.onChange?.({ regions: regions.length, ms: this.lastStartMs, running: true });
    if (old) {
      const s0 = Date.now();
      await old.runner.stop();
      this.lastStopMs = Date.now() - s0;
    }
  }

  /** End a handover for the old process: deliver its held faults before the cutover, drop the rest. */
  private release(old: Generation, cut: number): void {
    const held = old.held ?? [];
    old.held = null;
    old.holdFrom = Infinity;
    old.until = cut;
    for (const e of held) this.deliver(old, e);
  }

  private deliver(g: Generation, e: TraceEvent): void {
    if (e.kind === 'fault') {
      if (e.tsNs < g.from || e.tsNs >= g.until) {
        this.duplicates++;
        return;
      }
      // Coarse (1 GiB) kernel filter: keep only faults in the exact 2 MiB regions.
      if (!g.regions.has(regionKey(e.pid, Math.floor(e.addr / 2 ** 21)))) return;
      // The one fault both processes could pass (old copy just before the cutover, new copy just after, their
      // nsecs read separately): same thread, address and ip within a few µs of the cutover, either order.
      if (this.lastCut > 0 && Math.abs(e.tsNs - this.lastCut) < DUP_WINDOW_NS) {
        for (const r of this.recent) {
          if (r.gen !== g.id && r.e.kind === 'fault' && r.e.tid === e.tid && r.e.addr === e.addr && r.e.ip === e.ip && Math.abs(r.e.tsNs - e.tsNs) < DUP_WINDOW_NS) {
            this.duplicates++;
            return;
          }
        }
        this.recent.push({ gen: g.id, e });
        if (this.recent.length > 64) this.recent.shift();
      }
    }
    this.opts.sink.event(e);
  }

  private genSink(g: Generation): ParseSink {
    const out = this.opts.sink;
    return {
      event: (e) => {
        if (g.pending) g.pending.push(e);
        else if (g.held && e.tsNs >= g.holdFrom) g.held.push(e);
        else this.deliver(g, e);
      },
      lost: (n) => {
        this.lost += n;
        out.lost(n);
      },
      ready: () => {
        // The fault process's own marker: consumed here (the collector's ready() is about the main program).
      },
      malformed: (l, r) => out.malformed(l, r),
      message: (t) => out.message?.(t),
    };
  }
}

export type { ScriptSpec };
