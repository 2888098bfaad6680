// BpftraceRunner: the always-on tracepoint/kprobe program (one bpftrace process, one ordered stream).
// stdout goes through a pipe (never a pty: it would merge stderr), each line to collector/parse.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ParseSink } from '../contracts.ts';
import type { TraceEvent } from '../../schema/events.ts';
import { parseLine, type ReadyAtSink } from '../parse/index.ts';
import { composeDetailed, type ComposedProgram, type ScriptInput } from './program.ts';

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
  /** Count event lines per kind in the kernel and print the counts (runner/program.ts countSent). */
  countSent?: boolean;
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
    this.composed = composeDetailed(opts.scripts, { tag: opts.tag ?? 'main', sentinelPid: nextSentinelPid(), countSent: opts.countSent });
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
      sent: (counts: Readonly<Record<string, number>>) => out.sent?.(counts),
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
