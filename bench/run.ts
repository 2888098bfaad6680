// `npm run bench`: pinwatch's cost and speed, measured side by side (docs/benchmarks.md holds the latest table).
//   1. overhead on the traced workload (with / without `pinwatch record`, alternating, same invocation), after a
//      method check with raw bpftrace programs (an in-kernel filter rejecting everything; printing every fault);
//   2. ingest throughput: a recorded bpftrace stream through parse → model → rules (→ SQLite);
//   3. latency: divergence-causing syscall → anomaly row in SQLite, → socket.io message;
//   4. memory: collector RSS over a long event stream, and with 10k pins / 1M pinned pages;
//   5. events: events/s reaching user space (host left alone, a non-pinning churn), zap/remap filter off vs on;
//   6. fio: io_uring fixed-buffer IOPS with `pinwatch record` running vs not.
//   7. hypervisor (issue 11): 256 GiB pinned by 4 VMs (synthetic, contiguous and fragmented), registration time,
//      idle verification CPU and sweep duration; 1/4/8 GiB pinned for real under `pinwatch record`, extrapolated.
// Usage: node --import tsx bench/run.ts [--smoke] [--json FILE] [--only SECTIONS] [--reps N] [--runs-per-phase K]
//        [--cpu LIST|none] [--nice N|none] [--update-doc] [--hv-vm-gib N] [--hv-reps N] [--real-gib LIST]
// Prints a markdown table; writes the JSON to --json FILE (default bench/results/latest.json).
// Figures that cannot be measured here (no root / bpftrace, a component missing) come out as "skipped" with
// the reason; the process exits 1 if a figure failed with an error, 0 otherwise (a missed target is a result).
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import { z } from 'zod';
import { buildWorkload } from './harness/build.ts';
import { FIGURES, skipped, measured, type Figure, type Section } from './harness/figures.ts';
import type { IngestResult } from './harness/ingest.ts';
import { measureEvents } from './harness/events.ts';
import { fioSkipReason, measureFio } from './harness/fio.ts';
import { latencyLanded, latencySocketio, latencySqlite } from './harness/latency.ts';
import type { HypervisorResult, Layout } from './harness/hypervisor.ts';
import { DEFAULT_COLLECTOR_CONFIG } from '../collector/contracts.ts';
import type { MemoryPinsResult, MemoryStreamResult } from './harness/memory.ts';
import { measureRealPins } from './harness/pinned-real.ts';
import { liveSkipReason, measureOverheadGroup, pinHolder, pinwatchRecord, rawBpftrace } from './harness/overhead.ts';
import { describeMachine, renderMachine, renderTable } from './harness/report.ts';
import { storeLanded } from './harness/sinks.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const SECTIONS: readonly Section[] = ['method', 'overhead', 'events', 'fio', 'ingest', 'latency', 'memory', 'hypervisor'];

const program = new Command()
  .name('bench')
  .description('pinwatch benchmarks: overhead, ingest throughput, latency, memory')
  .option('--smoke', 'short run: every figure, small sizes, 2 repetitions (the test suite runs this)', false)
  .option('--json <file>', 'write the results as JSON here', join(ROOT, 'bench/results/latest.json'))
  .option('--only <sections>', `comma-separated subset of ${SECTIONS.join(',')}`)
  .option('--reps <n>', 'overhead pairs (with/without) per case; default 5, smoke 2')
  .option('--runs-per-phase <k>', 'workload runs per with/without phase (median taken); default 3, smoke 1')
  .option('--cpu <list>', "taskset CPU list for the traced workloads, or 'none'", '1')
  .option('--nice <n>', "nice value for the traced workloads (-20..19), or 'none'", 'none')
  .option('--update-doc', 'replace the table in docs/benchmarks.md with this run', false)
  .option('--hv-vm-gib <n>', 'hypervisor section: GiB pinned per synthetic VM (4 VMs); default 64, smoke 1')
  .option('--hv-reps <n>', 'hypervisor section: synthetic runs per layout; default 3, smoke 2')
  .option('--real-gib <list>', "hypervisor section: GiB actually pinned, comma-separated; default '1,4,8', smoke '1'");
program.parse();
const Opts = z.object({
  smoke: z.boolean(),
  json: z.string(),
  only: z.string().optional(),
  reps: z.coerce.number().int().min(1).optional(),
  runsPerPhase: z.coerce.number().int().min(1).optional(),
  cpu: z.string().regex(/^(none|[0-9][0-9,-]*)$/),
  nice: z.string().regex(/^(none|-?[0-9]+)$/),
  updateDoc: z.boolean(),
  hvVmGib: z.coerce.number().positive().optional(),
  hvReps: z.coerce.number().int().min(1).optional(),
  realGib: z.string().regex(/^[0-9]+(,[0-9]+)*$/).optional(),
});
const opts = Opts.parse(program.opts());
const only = new Set(opts.only ? opts.only.split(',').map((s) => s.trim()) : SECTIONS);
for (const s of only) if (!SECTIONS.includes(s as Section)) throw new Error(`--only: unknown section ${s}`);
const smoke = opts.smoke;
const placement = { cpus: opts.cpu === 'none' ? null : opts.cpu, nice: opts.nice === 'none' ? null : Number(opts.nice) };

/** Sizes: the full run is what docs/benchmarks.md reports; smoke keeps every figure but finishes in ~2 minutes. */
const size = smoke
  ? {
      reps: opts.reps ?? 2,
      runsPerPhase: opts.runsPerPhase ?? 1,
      faults: 100_000,
      printFaults: 20_000,
      pageCache: ['--mib', '8', '--rounds', '2'],
      forks: 300,
      ingestEvents: 200_000,
      latencyRuns: 3,
      streamEvents: 300_000,
      pins: { pins: 1_000, pagesPerPin: 100, pinsPerPid: 10 },
      idleMaxMs: 2000,
      events: { reps: 1, idleSeconds: 2, churnSeconds: 2, churnRate: 1250 },
      fio: { reps: 2, seconds: 3, sizeMiB: 64 },
      hypervisor: { vms: 4, vmGiB: opts.hvVmGib ?? 1, extentGiB: 16, idleMs: 3000, reps: opts.hvReps ?? 2 },
      real: { sizesGiB: opts.realGib?.split(',').map(Number) ?? [1], windowMs: 3000 },
    }
  : {
      reps: opts.reps ?? 5,
      runsPerPhase: opts.runsPerPhase ?? 3,
      faults: 1_000_000,
      printFaults: 200_000,
      pageCache: ['--mib', '32', '--rounds', '6'],
      forks: 3000,
      ingestEvents: 3_000_000,
      latencyRuns: 30,
      streamEvents: 10_000_000,
      pins: { pins: 10_000, pagesPerPin: 100, pinsPerPid: 10 },
      idleMaxMs: 5_000,
      events: { reps: 3, idleSeconds: 10, churnSeconds: 5, churnRate: 1250 },
      fio: { reps: 5, seconds: 15, sizeMiB: 256 },
      hypervisor: { vms: 4, vmGiB: opts.hvVmGib ?? 64, extentGiB: 16, idleMs: 10_000, reps: opts.hvReps ?? 3 },
      real: { sizesGiB: opts.realGib?.split(',').map(Number) ?? [1, 4, 8], windowMs: 10_000 },
    };

const log = (s: string) => process.stderr.write(s + '\n');
const figures = new Map<string, Figure>();
const put = (fs: Figure[]) => fs.forEach((f) => figures.set(f.id, f));
const idsOf = (prefix: string) => FIGURES.filter((f) => f.id.startsWith(prefix)).map((f) => f.id);

/** Run a section; on an exception its figures come out skipped with the error (kind 'error'). */
async function section(name: Section, ids: string[], fn: () => Promise<void>): Promise<void> {
  if (!only.has(name)) {
    put(ids.map((id) => ({ ...skipped(id, 'not selected (--only)'), skipKind: 'not-selected' as const })));
    return;
  }
  log(`== ${name}`);
  const t0 = Date.now();
  try {
    await fn();
  } catch (err) {
    const msg = (err as Error).message.split('\n')[0];
    log(`   ${name} failed: ${(err as Error).stack}`);
    for (const id of ids) if (!figures.has(id)) figures.set(id, { ...skipped(id, `error: ${msg}`), skipKind: 'error' });
  }
  for (const id of ids) if (!figures.has(id)) figures.set(id, { ...skipped(id, 'section did not produce it'), skipKind: 'error' });
  log(`   ${name} done in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
}

function prerequisite(ids: string[], reason: string): void {
  log(`   skipped: ${reason}`);
  put(ids.map((id) => ({ ...skipped(id, reason), skipKind: 'prerequisite' as const })));
}

function notLanded(ids: string[], reason: string): void {
  log(`   cannot run yet: ${reason}`);
  put(ids.map((id) => ({ ...skipped(id, reason), skipKind: 'not-landed' as const })));
}

/** An in-process benchmark in a fresh Node process (bench/harness/child.ts); its one JSON line. */
/** taskset, when this host has it: "one core" means the whole Node process, V8's GC and compiler threads included. */
const TASKSET = ['/usr/bin/taskset', '/bin/taskset'].find((p) => existsSync(p)) ?? null;

function child<T>(what: string, o: unknown, oneCpu: string | null = null): Promise<T> {
  return new Promise((resolvePromise, reject) => {
    const node = [process.execPath, '--import', 'tsx', 'bench/harness/child.ts', what, JSON.stringify(o)];
    const argv = oneCpu !== null && TASKSET ? [TASKSET, '-c', oneCpu, ...node] : node;
    const c = spawn(argv[0], argv.slice(1), {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    c.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    c.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
    c.on('close', (code) => {
      if (code !== 0) return reject(new Error(`bench child ${what} exited ${code}: ${err.trim().slice(-2000)}`));
      try {
        resolvePromise(JSON.parse(out.trim().split('\n').pop()!) as T);
      } catch (e) {
        reject(new Error(`bench child ${what} printed no result: ${(e as Error).message}; stderr: ${err.slice(-1000)}`));
      }
    });
  });
}

// ---------------------------------------------------------------- sections

const live = liveSkipReason();
const loadBefore = os.loadavg();
/** CPU pressure (PSI "some", % of time tasks waited for a CPU, 300 s average): how contended the host was. */
function cpuPressure(): number | null {
  try {
    return Number(/^some avg10=[\d.]+ avg60=[\d.]+ avg300=([\d.]+)/m.exec(readFileSync('/proc/pressure/cpu', 'utf8'))?.[1] ?? NaN);
  } catch {
    return null;
  }
}
const pressureBefore = cpuPressure();
const started = new Date();

await section('method', idsOf('method.'), async () => {
  if (live) return prerequisite(idsOf('method.'), live);
  const fh = buildWorkload('fault-heavy');
  // faults.bt as the FaultWatcher runs it with pins live only in some other process (here: none at all): one
  // map lookup per fault of every process, nothing passes. BEGIN prints "ready"; the harness then waits until
  // bpftrace is idle (0.17 attaches the probes after BEGIN).
  const template = readFileSync(join(ROOT, 'bpf/tracepoint/faults.bt'), 'utf8');
  const placeholder = /^\s*\/\/ @@PINWATCH_REGIONS@@\s*$/m;
  if (!placeholder.test(template)) throw new Error('bpf/tracepoint/faults.bt has no regions placeholder line');
  const rejectAll = template.replace(placeholder, '  printf("ready\\n");');
  put(
    await measureOverheadGroup({
      tracer: rawBpftrace('bpftrace faults.bt, no regions (filter rejects every fault)', rejectAll),
      cases: [{ id: 'method.raw-filter-reject', workload: [fh, '--faults', String(size.faults)] }],
      idleMaxMs: size.idleMaxMs,
      bpfStats: !smoke, // one more attach per group: worth it in the full run only
      reps: size.reps,
      runsPerPhase: size.runsPerPhase,
      placement,
      log,
    }),
  );
  const printAll =
    'BEGIN { printf("ready\\n"); } tracepoint:exceptions:page_fault_user ' +
    '{ printf("fault\\t%llu\\t%d\\t%d\\t%llu\\t%llu\\t%llu\\t%s\\n", nsecs, pid, tid, (uint64)args->address, (uint64)args->error_code, (uint64)args->ip, comm); }';
  put(
    await measureOverheadGroup({
      tracer: rawBpftrace('bpftrace printing every page_fault_user (read by this process through a pipe)', printAll),
      cases: [{ id: 'method.raw-print-all', workload: [fh, '--faults', String(size.printFaults)] }],
      idleMaxMs: 1500, // it prints every fault of every process on the host: never idle
      bpfStats: !smoke, // one more attach per group: worth it in the full run only
      reps: size.reps,
      runsPerPhase: size.runsPerPhase,
      placement,
      log,
    }),
  );
});

await section('overhead', idsOf('overhead.'), async () => {
  if (live) return prerequisite(idsOf('overhead.'), live);
  if (!existsSync(join(ROOT, 'bin/pinwatch.js'))) return notLanded(idsOf('overhead.'), 'bin/pinwatch.js (pinwatch record) has not landed');
  const fh = buildWorkload('fault-heavy');
  const faults = ['--faults', String(size.faults)];
  put(
    await measureOverheadGroup({
      tracer: pinwatchRecord(),
      // No-pin cases first: a case with pins must not leave the next one with a fault filter still attached.
      cases: [
        { id: 'overhead.fault.no-pins', workload: [fh, ...faults] },
        { id: 'overhead.page-cache.no-pins', workload: [buildWorkload('page-cache-heavy'), ...size.pageCache] },
        { id: 'overhead.fork.no-pins', workload: [buildWorkload('fork-heavy'), '--forks', String(size.forks)] },
        // A hypervisor's steady state: pins live, intact. On 5.9+ no fault probe is attached for them at all.
        { id: 'overhead.fault.pins-elsewhere', workload: [fh, ...faults], companion: pinHolder() },
        // Forks of a process that pins nothing, while another pins: the fork tracepoint stays host-wide (a fork of
        // a pinning process shares its pages), but the filter drops this process's forks and advices in the kernel.
        { id: 'overhead.fork.pins-elsewhere', workload: [buildWorkload('fork-heavy'), '--forks', String(size.forks)], companion: pinHolder() },
        // The same after the holder zapped one pinned page: the fault watcher traces that region, and every
        // process on the host pays the tracepoint (its BPF program rejects them in the kernel).
        { id: 'overhead.fault.pins-elsewhere-armed', workload: [fh, ...faults], companion: pinHolder(512, true), needsFaultFilter: true },
        // Timed from SIGUSR1 (after its buffer is pinned and the collector's fault filter covers it) to exit: the
        // steady state of a process faulting in its pinned buffer, not the seconds the filter takes to attach.
        { id: 'overhead.fault.own-pinned', workload: [fh, ...faults, '--pinned'], needsFaultFilter: true, startsPaused: true },
      ],
      idleMaxMs: size.idleMaxMs,
      bpfStats: !smoke, // one more attach per group: worth it in the full run only
      reps: size.reps,
      runsPerPhase: size.runsPerPhase,
      placement,
      log,
    }),
  );
});

await section('events', idsOf('events.'), async () => {
  if (live) return prerequisite(idsOf('events.'), live);
  put(await measureEvents({ ...size.events, placement, log }));
});

await section('fio', idsOf('fio.'), async () => {
  if (live) return prerequisite(idsOf('fio.'), live);
  const noFio = fioSkipReason();
  if (noFio) return prerequisite(idsOf('fio.'), noFio);
  if (!existsSync(join(ROOT, 'bin/pinwatch.js'))) return notLanded(idsOf('fio.'), 'bin/pinwatch.js (pinwatch record) has not landed');
  put(await measureFio({ ...size.fio, placement, log }));
});

await section('ingest', idsOf('ingest.'), async () => {
  const stages: [string, 'parse' | 'collector' | 'collector+sqlite'][] = [
    ['ingest.parse', 'parse'],
    ['ingest.parse-model-rules', 'collector'],
    ['ingest.parse-model-rules-sqlite', 'collector+sqlite'],
  ];
  for (const [id, stage] of stages) {
    if (stage === 'collector+sqlite' && !storeLanded()) {
      notLanded([id], 'collector/store has not landed');
      continue;
    }
    // On one core, as the target says: unpinned, V8's parallel GC and compiler threads ran on the other CPU
    // (CPU time above wall time, measured) and the per-CPU-second rate mixed two cores' work.
    const r = await child<IngestResult>('ingest', { stage, events: size.ingestEvents }, placement.cpus ?? '0');
    if (r.malformed > 0) log(`   warning: ${r.malformed} malformed lines in the fixture replay (${stage})`);
    log(`   ${stage}: ${Math.round(r.eventsPerCpuSecond).toLocaleString()} events/CPU-s, ${Math.round(r.eventsPerWallSecond).toLocaleString()} events/wall-s`);
    put([
      measured(id, r.eventsPerCpuSecond, {
        note:
          `${r.events.toLocaleString()} events (fixture of ${r.fixtureLines.toLocaleString()} lines, cycled), ${r.cpuSeconds.toFixed(2)} CPU-s; ` +
          `wall-clock rate ${Math.round(r.eventsPerWallSecond).toLocaleString()}/s; ${r.anomalies.toLocaleString()} anomalies raised` +
          (r.rowsWritten !== undefined ? `; ${r.rowsWritten.toLocaleString()} SQLite rows written (${(r.rowsWritten / r.events).toFixed(2)} per event)` : ''),
        samples: { eventsPerWallSecond: [r.eventsPerWallSecond], eventsPerCpuSecond: [r.eventsPerCpuSecond] },
      }),
    ]);
  }
});

await section('latency', idsOf('latency.'), async () => {
  if (live) return prerequisite(idsOf('latency.'), live);
  const missing = latencyLanded();
  if (missing) return notLanded(idsOf('latency.'), missing);
  try {
    put(await latencySqlite({ runs: size.latencyRuns, log }));
  } catch (err) {
    log(`   sqlite latency failed: ${(err as Error).stack}`);
    for (const id of idsOf('latency.sqlite')) figures.set(id, { ...skipped(id, `error: ${(err as Error).message.split('\n')[0]}`), skipKind: 'error' });
  }
  put(await latencySocketio({ runs: size.latencyRuns, log }));
});

await section('memory', idsOf('memory.'), async () => {
  const store = storeLanded();
  const s = await child<MemoryStreamResult>('memory-stream', { events: size.streamEvents, store });
  log(`   stream: ${s.events.toLocaleString()} events in ${s.seconds.toFixed(1)} s, RSS ${s.rssEarlyMiB.toFixed(0)} → ${s.rssEndMiB.toFixed(0)} MiB (peak ${s.rssPeakMiB.toFixed(0)})`);
  const streamNote = `${s.events.toLocaleString()} synthetic events through the Collector${store ? ' + SQLite store' : ' (no store: collector/store not landed)'}, ${s.seconds.toFixed(0)} s; live heap after GC ${s.liveHeapEarlyMiB.toFixed(1)} → ${s.liveHeapEndMiB.toFixed(1)} MiB; peak RSS ${s.rssPeakMiB.toFixed(0)} MiB`;
  const rss = { rss: s.samples.map((x) => x.rssMiB), events: s.samples.map((x) => x.events) };
  put([
    measured('memory.stream.rss-early', s.rssEarlyMiB, { note: streamNote }),
    measured('memory.stream.rss-end', s.rssEndMiB, { note: streamNote }),
    measured('memory.stream.rss-growth', s.rssGrowthMiB, { n: s.samples.length, lo: Math.min(...rss.rss), hi: Math.max(...rss.rss), note: streamNote, samples: rss }),
  ]);
  const p = await child<MemoryPinsResult>('memory-pins', { ...size.pins, store });
  const pinsNote = `${p.livePins.toLocaleString()} live pins / ${p.pages.toLocaleString()} pages; live heap +${p.liveHeapDeltaMiB.toFixed(1)} MiB; one verification pass over every pinned page ${p.verifyPassMs.toFixed(0)} ms`;
  put([
    measured('memory.pins.rss', p.rssAfterMiB, { note: pinsNote }),
    measured('memory.pins.delta', p.rssDeltaMiB, { note: pinsNote }),
  ]);
});

await section('hypervisor', FIGURES.filter((f) => f.section === 'hypervisor').map((f) => f.id), async () => {
  // Synthetic: each layout `reps` times, alternating, each run in a fresh Node process (its own RSS).
  const hv = size.hypervisor;
  const runs: Record<Layout, HypervisorResult[]> = { contiguous: [], fragmented: [] };
  for (let r = 0; r < hv.reps; r++) {
    for (const layout of ['contiguous', 'fragmented'] as const) {
      const x = await child<HypervisorResult>('hypervisor', { layout, vms: hv.vms, vmGiB: hv.vmGiB, extentGiB: hv.extentGiB, idleMs: hv.idleMs });
      runs[layout].push(x);
      log(
        `   ${layout} ${hv.vms} × ${hv.vmGiB} GiB: tracked ${x.trackedPages.toLocaleString()} of ${x.askedPages.toLocaleString()} pages, RSS ${x.rssAfterMiB.toFixed(0)} MiB ` +
          `(peak ${x.rssPeakMiB.toFixed(0)}), register ${x.registerMs.map((m) => m.toFixed(0)).join('/')} ms (CPU ${x.registerCpuMs.map((m) => m.toFixed(0)).join('/')}), idle CPU ${(100 * x.sweep.cpuShare).toFixed(2)} %, ` +
          `sweep ${x.sweep.pagesPerSecond.toFixed(0)} pages/s`,
      );
    }
  }
  const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)];
  const spread = (xs: number[]) => ({ lo: Math.min(...xs), hi: Math.max(...xs), n: xs.length });
  const tracked = (layout: Layout) => {
    const x = runs[layout][0];
    const cut = x.trackedPages < x.askedPages;
    return (
      `${x.vms} VMs × ${x.vmGiB} GiB (VFIO MAP_DMA each): ${cut ? 'TRUNCATED: ' : ''}model tracks ${x.trackedPages.toLocaleString()} of ${x.askedPages.toLocaleString()} pages asked` +
      (cut ? ` (${x.truncatedPins} pins cut at the per-pin cap)` : '') +
      `; ${x.physicalRuns.toLocaleString()} physically contiguous runs`
    );
  };
  const rssFigure = (id: string, layout: Layout) => {
    const xs = runs[layout];
    const rss = xs.map((x) => x.rssAfterMiB);
    const x = xs[0];
    const perTracked = (med(xs.map((y) => y.rssDeltaMiB)) * x.askedPages) / x.trackedPages;
    return measured(id, med(rss), {
      ...spread(rss),
      note:
        `${tracked(layout)}; RSS after a full GC (Node baseline ${med(xs.map((y) => y.rssBaselineMiB)).toFixed(0)} MiB, +${med(xs.map((y) => y.rssDeltaMiB)).toFixed(0)} MiB` +
        `${x.trackedPages < x.askedPages ? `, ${perTracked.toFixed(0)} MiB if scaled to every page asked` : ''}); peak (VmHWM) ${med(xs.map((y) => y.rssPeakMiB)).toFixed(0)} MiB; ` +
        `heap ${med(xs.map((y) => y.heapUsedMiB)).toFixed(0)} MiB, external ${med(xs.map((y) => y.externalMiB)).toFixed(0)} MiB; no SQLite store`,
      samples: { rssMiB: rss, rssDeltaMiB: xs.map((y) => y.rssDeltaMiB), rssPeakMiB: xs.map((y) => y.rssPeakMiB) },
    });
  };
  put([rssFigure('hypervisor.contiguous.rss', 'contiguous'), rssFigure('hypervisor.fragmented.rss', 'fragmented')]);
  // Register / sweep: the worse layout's median is the figure; the spread covers both layouts' runs.
  const worse = (f: (x: HypervisorResult) => number[]) => {
    const c = runs.contiguous.flatMap(f);
    const fr = runs.fragmented.flatMap(f);
    return { value: Math.max(med(c), med(fr)), c: med(c), f: med(fr), all: [...c, ...fr] };
  };
  const reg = worse((x) => x.registerMs.map((m) => m / 1000));
  put([
    measured('hypervisor.register', reg.value, {
      ...spread(reg.all),
      note: `median of the ${hv.vms * hv.reps} registrations per layout: contiguous ${reg.c.toFixed(3)} s, fragmented ${reg.f.toFixed(3)} s (the worse is the figure; ${tracked('contiguous')}); vfio_dma event into Collector.ingest → returned: pin-time pagemap snapshot (fake), model, rules, publish`,
      samples: { contiguousS: runs.contiguous.flatMap((x) => x.registerMs.map((m) => m / 1000)), fragmentedS: runs.fragmented.flatMap((x) => x.registerMs.map((m) => m / 1000)) },
    }),
  ]);
  const cpu = worse((x) => [100 * x.sweep.cpuShare]);
  const sw = worse((x) => [x.sweep.verifierFullSweepMs !== null ? x.sweep.verifierFullSweepMs / 1000 : x.sweep.fullSweepS]);
  const s0 = runs.contiguous[0].sweep;
  const verifierOwn = s0.verifierFullSweepMs !== null;
  put([
    measured('hypervisor.sweep-cpu', cpu.value, {
      ...spread(cpu.all),
      note:
        `whole collector process over ${(s0.windowMs / 1000).toFixed(0)} s idle with the real timers (no events): contiguous ${cpu.c.toFixed(2)} %, fragmented ${cpu.f.toFixed(2)} %; ` +
        `budget asked (verifyCpuShare) ${100 * s0.budgetAsked} %; read ${s0.pagesRead.toLocaleString()} pages in ${s0.passes} passes (contiguous, first run); synthetic pagemap (no kernel pread cost)`,
    }),
    measured('hypervisor.sweep-s', sw.value, {
      ...spread(sw.all),
      note:
        (verifierOwn ? 'the verifier\'s own full-sweep duration; ' : `tracked pages ÷ pages read per second while idle (${s0.pagesPerSecond.toFixed(0)}/s, contiguous first run); `) +
        `contiguous ${sw.c.toFixed(1)} s, fragmented ${sw.f.toFixed(1)} s; one unbudgeted full pass (verifyPass(true)): contiguous ${med(runs.contiguous.map((x) => x.fullPassMs)).toFixed(0)} ms, ` +
        `fragmented ${med(runs.fragmented.map((x) => x.fullPassMs)).toFixed(0)} ms; ${tracked('contiguous')}`,
    }),
  ]);

  // Real pins under `pinwatch record`.
  const realIds = idsOf('hypervisor.real.');
  if (live) return prerequisite(realIds, live);
  if (!existsSync(join(ROOT, 'bin/pinwatch.js'))) return notLanded(realIds, 'bin/pinwatch.js (pinwatch record) has not landed');
  const real = await measureRealPins({ sizesGiB: size.real.sizesGiB, windowMs: size.real.windowMs, log });
  if (real.samples.length === 0) return prerequisite(realIds, `not enough free memory: ${real.skipped.map((s) => s.reason).join('; ')}`);
  const ss = real.samples;
  const largest = ss[ss.length - 1];
  const sizes = `${ss.map((s) => s.gib).join(', ')} GiB pinned (1 GiB io_uring buffers, HELD_THP=1)${real.skipped.length ? `; skipped ${real.skipped.map((s) => s.reason).join('; ')}` : ''}`;
  const perSize = ss
    .map((s) => `${s.gib} GiB: RSS ${s.rssBeforeMiB.toFixed(0)} → ${s.rssMiB.toFixed(0)} MiB, bpftrace ${s.bpftraceRssMiB.toFixed(0)} MiB, CPU ${s.cpuBeforePct.toFixed(2)} → ${s.cpuPct.toFixed(2)} % (of which bpftrace ${s.bpftraceCpuBeforePct.toFixed(2)} → ${s.bpftraceCpuPct.toFixed(2)}), THP ${s.anonHugeMiB.toFixed(0)} MiB, fault filter up and idle ${s.settleS.toFixed(1)} s after the page rows`)
    .join('; ');
  const slopes = ss.map((s) => (s.rssMiB - s.rssBeforeMiB) / s.gib);
  // Spread of an extrapolation: each size alone (its pre-pin value + its own per-GiB slope × 256).
  const at256Spread = (pairs: number[][]) => {
    const each = pairs.map(([b, a], i) => b + ((a - b) / ss[i].gib) * 256);
    return { lo: Math.min(...each), hi: Math.max(...each) };
  };
  const fitText = (f: typeof real.rss, unit: string) => `least squares over ${f.points} points (each size and its pre-pin sample at 0 GiB): ${f.intercept.toFixed(2)} ${unit} + ${f.slope.toFixed(3)} ${unit}/GiB × 256`;
  // On a busy host the collector's "idle" CPU is other processes' events: when holding a pin did not raise it at
  // every size, the line through the points says nothing about the pins, and the figure gets no verdict.
  // The pagemap sweep is budgeted (verifyCpuShare of the collector's CPU): once the budget binds, more pinned memory
  // makes a full sweep take longer, not cost more, so the per-GiB line is capped at the budget (the synthetic rows
  // measure the budget holding at 256 GiB). Nothing else the collector does at rest grows with pinned memory.
  const budgetPct = DEFAULT_COLLECTOR_CONFIG.verifyCpuShare * 100;
  const cpuAt = (before: number, perGiB: number) => before + Math.min(budgetPct, perGiB * 256);
  const each = ss.map((s) => cpuAt(s.cpuBeforePct, (s.cpuPct - s.cpuBeforePct) / s.gib));
  const cpu256 = measured('hypervisor.real.cpu-256', cpuAt(real.cpu.intercept, real.cpu.slope), {
    lo: Math.min(...each),
    hi: Math.max(...each),
    n: real.cpu.points,
    note: `${fitText(real.cpu, '%')}, the slope × 256 capped at the sweep's budget ${budgetPct} % (uncapped: ${real.cpu.at256.toFixed(1)} %)`,
  });
  const cpuFell = ss.filter((s) => s.cpuPct < s.cpuBeforePct).map((s) => `${s.gib} GiB`);
  if (cpuFell.length) {
    cpu256.met = null;
    cpu256.inconclusive = `with the pin held the CPU was below the pre-pin CPU at ${cpuFell.join(', ')}: other processes' traced events dominate (load average ${os.loadavg()[0].toFixed(1)})`;
    cpu256.note = `INCONCLUSIVE: ${cpu256.inconclusive}; ${cpu256.note}`;
  }
  put([
    measured('hypervisor.real.rss-per-gib', real.rss.slope, { lo: Math.min(...slopes), hi: Math.max(...slopes), n: ss.length, note: `${sizes}; slope of ${fitText(real.rss, 'MiB')}; spread: per-size (RSS − pre-pin RSS) / GiB; ${perSize}`, samples: { gib: ss.map((s) => s.gib), rssMiB: ss.map((s) => s.rssMiB), rssBeforeMiB: ss.map((s) => s.rssBeforeMiB), bpftraceRssMiB: ss.map((s) => s.bpftraceRssMiB) } }),
    measured('hypervisor.real.rss-256', real.rss.at256, { ...at256Spread(ss.map((s) => [s.rssBeforeMiB, s.rssMiB])), n: real.rss.points, note: `${fitText(real.rss, 'MiB')}; collector (node) RSS only, bpftrace beside it: ${largest.bpftraceRssMiB.toFixed(0)} MiB at ${largest.gib} GiB` }),
    measured('hypervisor.real.cpu', largest.cpuPct, { ...spread(largest.cpuStepsPct), note: `${largest.gib} GiB held, ${(size.real.windowMs / 1000).toFixed(0)} s idle window after the collector settled, utime+stime of the collector's process tree (bpftrace ${largest.bpftraceCpuPct.toFixed(2)} %); spread: 1 s steps; ${perSize}`, samples: { stepsPct: largest.cpuStepsPct } }),
    cpu256,
    measured('hypervisor.real.pin-to-db', largest.toPageRowsS ?? largest.toPinRowsS, {
      note:
        `${largest.gib} GiB: from held-pin's "pinned" line to the pins rows ${largest.toPinRowsS.toFixed(2)} s, to the last page row of every pin ${largest.toPageRowsS?.toFixed(2) ?? 'not reached'} s ` +
        `(${largest.pagesRecorded.toLocaleString()} pages); per size: ${ss.map((s) => `${s.gib} GiB ${s.toPinRowsS.toFixed(2)}/${s.toPageRowsS?.toFixed(2) ?? '-'} s`).join(', ')}; held-pin fault-in + register ${largest.pinSetupS.toFixed(1)} s`,
      samples: { toPinRowsS: ss.map((s) => s.toPinRowsS), toPageRowsS: ss.map((s) => s.toPageRowsS ?? NaN) },
    }),
  ]);
});

// ---------------------------------------------------------------- report

const ordered = FIGURES.map((f) => figures.get(f.id) ?? { ...skipped(f.id, 'not run'), skipKind: 'error' as const });
const machine = describeMachine();
const result = {
  version: 1,
  started: started.toISOString(),
  finished: new Date().toISOString(),
  smoke,
  options: { ...opts, sizes: size },
  machine,
  loadavg: { before: loadBefore, after: os.loadavg() },
  cpuPressureSome300: { before: pressureBefore, after: cpuPressure() },
  method: {
    overhead:
      `alternating with/without pairs (ABBA), whole-process wall time, ratio of medians; workload pinned with taskset to CPU ${placement.cpus ?? '(none)'}` +
      `${placement.nice !== null ? ` at nice ${placement.nice}` : ''}; the tracer and everything else share the machine's ${machine.cpus} CPUs`,
    ingest: 'one Node process, events per CPU-second (the rate of one core); the recorded fixture is cycled',
  },
  figures: ordered,
};
const table = renderTable(ordered);
const contention =
  `- load average before/after: ${loadBefore.map((x) => x.toFixed(2)).join(' ')} / ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}` +
  (pressureBefore !== null ? `; CPU pressure (PSI some, avg300) before/after: ${pressureBefore}% / ${cpuPressure()}%` : '');
process.stdout.write(`\n${renderMachine(machine)}\n${contention}\n\n${table}\n`);
mkdirSync(dirname(resolve(opts.json)), { recursive: true });
writeFileSync(resolve(opts.json), JSON.stringify(result, null, 2) + '\n');
log(`\nresults: ${resolve(opts.json)}`);

if (opts.updateDoc) {
  const doc = join(ROOT, 'docs/benchmarks.md');
  const text = readFileSync(doc, 'utf8');
  const begin = '<!-- bench:table:begin -->';
  const end = '<!-- bench:table:end -->';
  const a = text.indexOf(begin);
  const b = text.indexOf(end);
  if (a < 0 || b < a) throw new Error(`docs/benchmarks.md: no ${begin} … ${end} markers`);
  const block = `${begin}\nRun ${started.toISOString().slice(0, 16).replace('T', ' ')} UTC${smoke ? ' (SMOKE: small sizes)' : ''}, \`npm run bench\`:\n\n${renderMachine(machine)}\n${contention}\n\n${table}\n${end}`;
  writeFileSync(doc, text.slice(0, a) + block + text.slice(b + end.length));
  log(`updated ${doc}`);
}

process.exit(ordered.some((f) => f.skipKind === 'error') ? 1 : 0);
