// Events reaching user space: the collector's own bpftrace program (the host's tracepoint selection, composed by
// the runner) with the in-kernel zap/remap filter off — every process's munmap, MAP_FIXED, mremap, shmdt and
// madvise, as the scripts were before it — and on, both attached AT THE SAME TIME, so they see the same host
// (on a shared machine its activity changes from one second to the next: windows taken one after the other
// compared different loads). Per repetition two windows: the host left alone ("idle": whatever else runs), then
// zap-churn (a process that pins nothing) paced at a fixed rate, whose own events are counted by its pid.
// Events are counted by their bpftrace timestamp (CLOCK_MONOTONIC, the clock of process.hrtime) in each window.
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { probeCapabilities, selectScripts } from '../../collector/capabilities/index.ts';
import type { ParseSink } from '../../collector/contracts.ts';
import { BpftraceRunner } from '../../collector/runner/bpftrace-runner.ts';
import { setZapFilter, type ScriptInput } from '../../collector/runner/program.ts';
import { buildWorkload } from './build.ts';
import { measured, type Figure } from './figures.ts';
import { placed, sleep, type Placement } from './proc.ts';
import { median } from './stats.ts';

const run = promisify(execFile);

export interface EventsOptions {
  /** Window pairs (host left alone, then churn), both programs attached throughout. */
  reps: number;
  idleSeconds: number;
  churnSeconds: number;
  /** zap-churn iterations a second (4 traced zap/remap syscalls each). */
  churnRate: number;
  placement: Placement;
  log?: (line: string) => void;
}

interface Window {
  perSecond: number;
  byKind: Map<string, number>;
}

interface PhaseResult {
  idle: Window;
  churn: Window;
  churnHost: number;
  churnZapsPerSecond: number;
  lost: number;
}

const nowNs = () => Number(process.hrtime.bigint());

/** The host's tracepoint program as the live session selects it, with the zap/remap filter on or off. */
async function programScripts(): Promise<(filter: boolean) => ScriptInput[]> {
  const caps = await probeCapabilities();
  const sel = selectScripts(caps, 'tracepoint');
  const texts = sel.scripts.map((s) => ({ s, text: (s as ScriptInput).text ?? readFileSync(s.file, 'utf8') }));
  return (filter) => texts.map(({ s, text }) => ({ ...s, text: setZapFilter(text, filter) }));
}

function count(events: Ev[], from: number, to: number, pid: number | null): Window {
  const byKind = new Map<string, number>();
  let n = 0;
  for (const e of events) {
    if (e.ts < from || e.ts > to || (pid !== null && e.pid !== pid)) continue;
    n++;
    byKind.set(e.kind, (byKind.get(e.kind) ?? 0) + 1);
  }
  return { perSecond: n / ((to - from) / 1e9), byKind };
}

/** One bpftrace program of the collector, its events kept with their timestamps. */
async function attach(scripts: ScriptInput[], tag: string): Promise<{ runner: BpftraceRunner; events: Ev[]; lost: () => number }> {
  const events: Ev[] = [];
  let lost = 0;
  const sink: ParseSink = {
    // madvise by behaviour (10 = MADV_DONTFORK: what Node's V8 does to every new heap page, host-wide by design)
    event: (e) => void events.push({ ts: e.tsNs, pid: e.pid, kind: e.kind === 'madvise' ? `madvise(${e.behavior})` : e.kind }),
    lost: (n) => void (lost += n),
    ready: () => undefined,
    malformed: () => undefined,
  };
  const runner = new BpftraceRunner({ scripts, sink, tag });
  await runner.start();
  return { runner, events, lost: () => lost };
}

type Ev = { ts: number; pid: number; kind: string };
type Which = 'before' | 'after';

/** Both programs attached; `reps` pairs of windows (idle, churn); per window and program, its counts. */
async function phases(scriptsFor: (filter: boolean) => ScriptInput[], o: EventsOptions, churn: string): Promise<Record<Which, PhaseResult[]>> {
  const progs = {
    before: await attach(scriptsFor(false), 'bench-events-off'),
    after: await attach(scriptsFor(true), 'bench-events-on'),
  };
  const out: Record<Which, PhaseResult[]> = { before: [], after: [] };
  try {
    await sleep(500);
    for (let i = 0; i < o.reps; i++) {
      const i0 = nowNs();
      await sleep(o.idleSeconds * 1000);
      const i1 = nowNs();
      const argv = placed(o.placement, [churn, '--rate', String(o.churnRate), '--seconds', String(o.churnSeconds)]);
      const c0 = nowNs();
      const res = await run(argv[0], argv.slice(1));
      const c1 = nowNs();
      const r = JSON.parse(res.stdout.trim().split('\n').pop()!) as { pid: number; zapsPerSecond: number };
      await sleep(500); // the last per-CPU buffers are polled
      for (const w of ['before', 'after'] as const) {
        const ev = progs[w].events;
        out[w].push({ idle: count(ev, i0, i1, null), churn: count(ev, c0, c1, r.pid), churnHost: count(ev, c0, c1, null).perSecond, churnZapsPerSecond: r.zapsPerSecond, lost: progs[w].lost() });
        ev.length = 0;
      }
    }
  } finally {
    await Promise.all([progs.before.runner.stop(), progs.after.runner.stop()]);
  }
  return out;
}

const top = (w: Window, seconds: number) =>
  [...w.byKind.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, 4)
    .map(([k, n]) => `${k} ${(n / seconds).toFixed(1)}/s`)
    .join(', ') || 'none';

export async function measureEvents(o: EventsOptions): Promise<Figure[]> {
  const log = o.log ?? (() => {});
  const churn = buildWorkload('zap-churn');
  const scriptsFor = await programScripts();
  const res = await phases(scriptsFor, o, churn);
  for (let i = 0; i < o.reps; i++) {
    for (const which of ['before', 'after'] as const) {
      const r = res[which][i];
      log(`   ${which === 'before' ? 'filter off' : 'filter on '}: idle ${r.idle.perSecond.toFixed(1)} events/s (${top(r.idle, o.idleSeconds)}); churn ${r.churn.perSecond.toFixed(1)}/s (${top(r.churn, o.churnSeconds)}) of its ${r.churnZapsPerSecond.toFixed(0)} zap syscalls/s, host ${r.churnHost.toFixed(0)}/s; lost ${r.lost}`);
    }
  }
  const fig = (id: string, xs: number[], note: string) => measured(id, median(xs), { lo: Math.min(...xs), hi: Math.max(...xs), n: xs.length, note, samples: { perSecond: xs } });
  const last = (w: 'before' | 'after') => res[w][res[w].length - 1];
  const zaps = median([...res.before, ...res.after].map((r) => r.churnZapsPerSecond));
  const common = (filter: string) => `the collector's tracepoint program, zap/remap filter ${filter} (PW_ZAP_FILTER), ${o.reps} window pair(s), both programs attached at once`;
  return [
    fig('events.idle.before', res.before.map((r) => r.idle.perSecond), `${common('off')}; ${o.idleSeconds} s windows; host not idle (other sessions share it); top kinds last run: ${top(last('before').idle, o.idleSeconds)}`),
    fig('events.idle.after', res.after.map((r) => r.idle.perSecond), `${common('on')}; ${o.idleSeconds} s windows; top kinds last run: ${top(last('after').idle, o.idleSeconds)}`),
    fig('events.churn.before', res.before.map((r) => r.churn.perSecond), `zap-churn's own events, ${zaps.toFixed(0)} zap/remap syscalls/s (mmap, DONTNEED, mremap, MAP_FIXED, munmap loop), ${o.churnSeconds} s; host total ${median(res.before.map((r) => r.churnHost)).toFixed(0)}/s`),
    fig('events.churn.after', res.after.map((r) => r.churn.perSecond), `zap-churn's own events with the filter on; host total ${median(res.after.map((r) => r.churnHost)).toFixed(0)}/s`),
  ];
}
