// Shared helpers of the live bpf tests: the root/bpftrace gate, the fixture build, a recording sink.
import { execFile, execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ParseSink } from '../../../collector/contracts.ts';
import type { TraceEvent } from '../../../schema/events.ts';

/** Why the live tests cannot run here, or null. */
export function liveSkipReason(): string | null {
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return 'not root';
  try {
    execFileSync('bpftrace', ['--version'], { stdio: 'ignore' });
  } catch {
    return 'bpftrace not found (apt-get install -y bpftrace)';
  }
  if (!existsSync('/sys/kernel/tracing/events') && !existsSync('/sys/kernel/debug/tracing/events')) {
    try {
      execFileSync('mount', ['-t', 'tracefs', 'nodev', '/sys/kernel/tracing']);
    } catch {
      return 'tracefs not mounted';
    }
  }
  return null;
}

/** test() options: skip with the reason locally; in CI (CI=true) a missing prerequisite is a failure. */
export function gate(): { skip: string | false; ciFailure: string | null } {
  const why = liveSkipReason();
  if (why && process.env.CI === 'true') return { skip: false, ciFailure: `live bpf prerequisites missing in CI: ${why}` };
  return { skip: why ?? false, ciFailure: null };
}

const FIXTURE_SRC = new URL('./fixtures/pw_fixture.c', import.meta.url).pathname;

/** Compile the fixture into a temp dir; returns the binary path. */
export function buildFixture(): string {
  const dir = mkdtempSync(join(tmpdir(), 'pw-fixture-'));
  const bin = join(dir, 'pw_fixture');
  execFileSync('cc', ['-O2', '-Wall', '-o', bin, FIXTURE_SRC, '-lpthread'], { stdio: 'inherit' });
  return bin;
}

/**
 * Run a fixture scenario to completion and parse its JSON report (first stdout line). Asynchronous on purpose:
 * a blocked event loop stops reading bpftrace's pipe, bpftrace blocks on write and its perf buffers overflow.
 */
export async function runFixture(bin: string, args: string[]): Promise<Record<string, unknown>> {
  const out = await new Promise<string>((resolve, reject) =>
    execFile(bin, args, { encoding: 'utf8' }, (err, stdout) => (err ? reject(err) : resolve(stdout))),
  );
  return JSON.parse(out.split('\n')[0]) as Record<string, unknown>;
}

/** An interactive fixture: lines of its stdout as JSON, write to its stdin. */
export function startFixture(bin: string, args: string[]) {
  const child = spawn(bin, args, { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines: Record<string, unknown>[] = [];
  let buf = '';
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (c: string) => {
    buf += c;
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      lines.push(JSON.parse(buf.slice(0, i)) as Record<string, unknown>);
      buf = buf.slice(i + 1);
    }
  });
  return {
    child,
    lines,
    async nextLine(timeoutMs = 5000): Promise<Record<string, unknown>> {
      const n = lines.length;
      await waitFor(() => lines.length > n, timeoutMs, 'fixture output');
      return lines[n];
    },
    send(text: string) {
      child.stdin.write(text);
    },
    async end() {
      child.stdin.end();
      await new Promise((r) => child.once('close', r));
    },
  };
}

export async function waitFor(cond: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

export interface Recording extends ParseSink {
  events: TraceEvent[];
  lostCount: number;
  malformedLines: { line: string; reason: string }[];
  readyTags: string[];
  messages: string[];
  of(pid: number): TraceEvent[];
}

export function recordingSink(): Recording {
  const r: Recording = {
    events: [],
    lostCount: 0,
    malformedLines: [],
    readyTags: [],
    messages: [],
    event(e) {
      r.events.push(e);
    },
    lost(n) {
      r.lostCount += n;
    },
    ready(t) {
      r.readyTags.push(t);
    },
    malformed(line, reason) {
      r.malformedLines.push({ line, reason });
    },
    message(t) {
      r.messages.push(t);
    },
    of(pid) {
      return r.events.filter((e) => e.pid === pid).sort((a, b) => a.tsNs - b.tsNs);
    },
  };
  return r;
}
