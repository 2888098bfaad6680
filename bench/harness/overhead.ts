// Overhead on the traced host. Method: for each of N pairs, one phase with the tracer attached and one
// without, order alternating between pairs (ABBA) so drift cancels; in a phase every workload of the group
// runs in turn, each `runsPerPhase` times (so one attach serves several runs and several workloads).
// Each run is timed as a whole process (spawn → exit). Result per workload: ratio of the medians
// (with / without), the min–max of the per-pair ratios, and the same ratio on the workload's own CPU time.
// The tracer is either a raw bpftrace program (to validate the method against known numbers) or the real
// `pinwatch record`.
import { mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startRecord } from '../../test/support/record.ts';
import { buildWorkload } from './build.ts';
import { measured, type Figure } from './figures.ts';
import { placed, sleep, startBackground, timeProcess, type Background, type Placement } from './proc.ts';
import { median, overheadRatio } from './stats.ts';

export interface Attached {
  /** pid of the tracer's top process (its children count too when waiting for it to be idle). */
  pid: number;
  stop(): Promise<void>;
  /** Text the tracer printed (for diagnostics). */
  output(): string;
}

export interface Tracer {
  name: string;
  attach(): Promise<Attached>;
}

/** A raw bpftrace program; it must `printf("ready\n")` from BEGIN, which runs once every probe is attached. */
export function rawBpftrace(name: string, program: string): Tracer {
  return {
    name,
    async attach() {
      const bg = await startBackground(['bpftrace', '-q', '-B', 'line', '-e', program], /^ready$/m, { timeoutMs: 60_000 });
      return {
        pid: bg.child.pid!,
        output: () => bg.stdout().slice(-2000) + bg.stderr().slice(-2000),
        async stop() {
          await bg.stop('SIGINT');
        },
      };
    },
  };
}

/** The real collector: `node bin/pinwatch.js record --db <tmp>`, ready when it prints "ready". */
export function pinwatchRecord(extraArgs: string[] = []): Tracer {
  return {
    name: `pinwatch record${extraArgs.length ? ' ' + extraArgs.join(' ') : ''}`,
    async attach() {
      const dir = mkdtempSync(join(tmpdir(), 'pinwatch-bench-'));
      const rec = await startRecord(join(dir, 'bench.db'), extraArgs);
      return {
        pid: rec.child.pid!,
        output: () => rec.stdout().slice(-2000) + rec.stderr().slice(-2000),
        async stop() {
          const code = await rec.stop('SIGINT');
          rmSync(dir, { recursive: true, force: true });
          if (code !== 0) throw new Error(`pinwatch record exited ${code ?? `by ${rec.child.signalCode}`} on SIGINT\n${rec.stderr().slice(-2000)}`);
        },
      };
    },
  };
}

/** Something that lives beside the workload in both kinds of run (e.g. a process holding a pin). */
export interface Companion {
  start(): Promise<Background>;
}

export function pinHolder(pages = 512, zap = false): Companion {
  const argv = [buildWorkload('pin-holder'), '--pages', String(pages), ...(zap ? ['--zap'] : [])];
  return { start: () => startBackground(argv, /"ready":true/, { timeoutMs: 10_000 }) };
}

export interface OverheadCase {
  /** Figure id. */
  id: string;
  workload: string[];
  companion?: Companion;
  /** With the tracer attached, time the run only once the collector's fault filter (a second bpftrace process,
   *  started by the FaultWatcher when a pin is armed: a zapped pinned page, a fork sharing pinned pages) is attached and idle. */
  needsFaultFilter?: boolean;
  /** The workload takes --wait-signal: it sets up (pins), prints a ready line and waits for SIGUSR1; the run is
   *  timed from the signal to its exit, in both phases (so the time to attach the fault filter is not counted). */
  startsPaused?: boolean;
}

export interface OverheadGroup {
  tracer: Tracer;
  cases: OverheadCase[];
  /** Pairs (with + without phases). */
  reps: number;
  runsPerPhase: number;
  /** taskset CPU list and nice value for the workload. */
  placement: Placement;
  /** Longest wait for the tracer to go idle (default 10 s). A tracer that is busy by nature (printing every
   *  fault of the host) never is: give it a short cap. */
  idleMaxMs?: number;
  /** After the pairs, one more attached run per case with kernel.bpf_stats_enabled=1, to report the time the
   *  tracer's BPF programs ran (fdinfo run_time_ns / run_cnt): what the in-kernel part costs, load-independent. */
  bpfStats?: boolean;
  log?: (line: string) => void;
}

// ---- waiting for the tracer to be idle ----

const CLK_TCK = 100; // USER_HZ: /proc stat times are in 1/100 s on every Linux architecture we run on

export function procCpuTicks(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(f[11]) + Number(f[12]); // utime, stime (fields 14, 15)
  } catch {
    return 0;
  }
}

/** pid and all its descendants (bpftrace children of the collector). */
export function processTree(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      const list = children.get(ppid) ?? [];
      list.push(Number(name));
      children.set(ppid, list);
    } catch {
      /* exited meanwhile */
    }
  }
  const out: number[] = [];
  const stack = [root];
  while (stack.length) {
    const p = stack.pop()!;
    out.push(p);
    stack.push(...(children.get(p) ?? []));
  }
  return out;
}

/** CPU seconds (user + sys) the tracer's process tree used so far: its bpftrace processes, and the rest (node). */
export function processCpu(rootPid: number): { node: number; bpftrace: number } {
  const out = { node: 0, bpftrace: 0 };
  for (const pid of processTree(rootPid)) {
    let comm = '';
    try {
      comm = readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
    } catch {
      continue; // gone
    }
    out[comm === 'bpftrace' ? 'bpftrace' : 'node'] += procCpuTicks(pid) / CLK_TCK;
  }
  return out;
}

/**
 * Wait until the tracer's process tree uses < 10% of a CPU over a 300 ms window (start-up compiled, backlog of a
 * previous run drained), at most maxMs. On a host with other activity the collector is never fully idle (it
 * traces everyone's madvise/munmap/fork): the cap bounds the wait. Returns how long it took.
 */
export async function waitIdle(rootPid: number, maxMs = 10_000): Promise<number> {
  const t0 = Date.now();
  const windowMs = 300;
  for (;;) {
    const tree = processTree(rootPid);
    const before = tree.reduce((s, p) => s + procCpuTicks(p), 0);
    await sleep(windowMs);
    const after = tree.reduce((s, p) => s + procCpuTicks(p), 0);
    const busyMs = ((after - before) * 1000) / CLK_TCK;
    if (busyMs <= windowMs * 0.1 || Date.now() - t0 >= maxMs) return Date.now() - t0;
  }
}

// ---- BPF program statistics (kernel.bpf_stats_enabled) ----

export interface BpfStats {
  runTimeNs: number;
  runCount: number;
}

/** Sum of run_time_ns / run_cnt over the BPF programs the process tree holds (each prog counted once). */
export function bpfStats(rootPid: number): BpfStats {
  const seen = new Set<string>();
  const out: BpfStats = { runTimeNs: 0, runCount: 0 };
  for (const pid of processTree(rootPid)) {
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      try {
        if (readlinkSync(`/proc/${pid}/fd/${fd}`) !== 'anon_inode:bpf-prog') continue;
        const info = readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8');
        const id = /prog_id:\s*(\d+)/.exec(info)?.[1];
        if (!id || seen.has(id)) continue;
        seen.add(id);
        out.runTimeNs += Number(/run_time_ns:\s*(\d+)/.exec(info)?.[1] ?? 0);
        out.runCount += Number(/run_cnt:\s*(\d+)/.exec(info)?.[1] ?? 0);
      } catch {
        /* fd closed meanwhile */
      }
    }
  }
  return out;
}

const BPF_STATS_SYSCTL = '/proc/sys/kernel/bpf_stats_enabled';

/** Processes named bpftrace in the tree. */
function bpftraceCount(rootPid: number): number {
  let n = 0;
  for (const pid of processTree(rootPid)) {
    try {
      if (readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'bpftrace') n++;
    } catch {
      /* gone */
    }
  }
  return n;
}

/** Wait until the collector runs its fault filter (≥ 2 bpftrace processes under it) and is idle again. */
export async function waitFaultFilter(rootPid: number, idleMaxMs: number | undefined, maxMs = 60_000): Promise<number> {
  const t0 = Date.now();
  while (bpftraceCount(rootPid) < 2) {
    if (Date.now() - t0 > maxMs) throw new Error(`the collector started no fault filter within ${maxMs} ms of a pin going live`);
    await sleep(100);
  }
  await waitIdle(rootPid, idleMaxMs);
  return Date.now() - t0;
}

// ---- the measurement ----

/** One timed run of a case: whole process, or (startsPaused) from SIGUSR1 to exit. */
async function timeCase(
  c: OverheadCase,
  placement: Placement,
  tracerPid: number | null,
  idleMaxMs: number | undefined,
  onStart: () => void = () => {},
): Promise<{ wallNs: number; stdout: string }> {
  if (!c.startsPaused) {
    if (tracerPid !== null && c.needsFaultFilter) await waitFaultFilter(tracerPid, idleMaxMs);
    onStart();
    return timeProcess(placed(placement, c.workload));
  }
  const bg = await startBackground(placed(placement, [...c.workload, '--wait-signal']), /"ready":true/, { timeoutMs: 30_000 });
  try {
    if (tracerPid !== null && c.needsFaultFilter) await waitFaultFilter(tracerPid, idleMaxMs);
    onStart();
    const t0 = process.hrtime.bigint();
    bg.child.kill('SIGUSR1');
    const code = await bg.exited;
    const wallNs = Number(process.hrtime.bigint() - t0);
    if (code !== 0) throw new Error(`${c.workload.join(' ')} failed (${code}): ${bg.stderr().trim()}`);
    // 'exit' can come before the last stdout chunk
    if (!bg.child.stdout!.readableEnded) await new Promise((r) => bg.child.stdout!.once('close', r));
    return { wallNs, stdout: bg.stdout() };
  } finally {
    await bg.stop('SIGKILL', 1000);
  }
}

/** The workloads end with one JSON line that includes cpu_ns (getrusage, self + children). */
function workloadCpuNs(stdout: string): number {
  const last = stdout.trim().split('\n').pop() ?? '';
  const cpu = (JSON.parse(last) as { cpu_ns?: number }).cpu_ns;
  if (typeof cpu !== 'number') throw new Error(`workload printed no cpu_ns: ${last}`);
  return cpu;
}

interface Samples {
  wall: number[];
  cpu: number[];
}

export async function measureOverheadGroup(g: OverheadGroup): Promise<Figure[]> {
  const log = g.log ?? (() => {});
  // Per case, per pair: median of the runs in that phase.
  const withS = new Map<string, Samples>(g.cases.map((c) => [c.id, { wall: [], cpu: [] }]));
  const withoutS = new Map<string, Samples>(g.cases.map((c) => [c.id, { wall: [], cpu: [] }]));
  for (const c of g.cases) await timeCase(c, g.placement, null, g.idleMaxMs); // warm-up: binary, libc, page cache

  const runCase = async (c: OverheadCase, into: Samples, tracerPid: number | null) => {
    const comp = await c.companion?.start();
    try {
      // The collector only knows pins it saw being made: the companion starts after attach, and we let the
      // collector take it in (pin recorded, fault filter armed) before timing.
      if (tracerPid !== null) await waitIdle(tracerPid, g.idleMaxMs);
      const wall: number[] = [];
      const cpu: number[] = [];
      for (let k = 0; k < g.runsPerPhase; k++) {
        const r = await timeCase(c, g.placement, tracerPid, g.idleMaxMs);
        wall.push(r.wallNs);
        cpu.push(workloadCpuNs(r.stdout));
        if (tracerPid !== null) await waitIdle(tracerPid, g.idleMaxMs); // drain the backlog this run caused before the next
      }
      into.wall.push(median(wall));
      into.cpu.push(median(cpu));
    } finally {
      await comp?.stop('SIGTERM');
    }
  };
  const phaseWithout = async () => {
    for (const c of g.cases) await runCase(c, withoutS.get(c.id)!, null);
  };
  const phaseWith = async () => {
    const t = await g.tracer.attach();
    try {
      const settleMs = await waitIdle(t.pid, g.idleMaxMs);
      log(`    ${g.tracer.name} attached, idle after ${settleMs} ms`);
      for (const c of g.cases) await runCase(c, withS.get(c.id)!, t.pid);
    } catch (err) {
      // The case's own failure is the one to report; a failing stop after it would hide it.
      await t.stop().catch((stopErr: unknown) => log(`    stopping ${g.tracer.name} after a failed case also failed: ${String(stopErr)}`));
      throw err;
    }
    await t.stop();
  };
  for (let i = 0; i < g.reps; i++) {
    if (i % 2 === 0) {
      await phaseWithout();
      await phaseWith();
    } else {
      await phaseWith();
      await phaseWithout();
    }
    for (const c of g.cases) {
      const w = withS.get(c.id)!;
      const wo = withoutS.get(c.id)!;
      log(
        `  ${c.id} pair ${i + 1}/${g.reps}: without ${(wo.wall[i] / 1e9).toFixed(3)} s (cpu ${(wo.cpu[i] / 1e9).toFixed(3)}), ` +
          `with ${(w.wall[i] / 1e9).toFixed(3)} s (cpu ${(w.cpu[i] / 1e9).toFixed(3)})`,
      );
    }
  }
  const bpf = new Map<string, BpfStats & { wallNs: number }>();
  if (g.bpfStats) {
    const before = readFileSync(BPF_STATS_SYSCTL, 'utf8').trim();
    const t = await g.tracer.attach();
    try {
      await waitIdle(t.pid, g.idleMaxMs);
      writeFileSync(BPF_STATS_SYSCTL, '1');
      for (const c of g.cases) {
        const comp = await c.companion?.start();
        try {
          await waitIdle(t.pid, g.idleMaxMs);
          let s0: BpfStats = { runTimeNs: 0, runCount: 0 };
          const r = await timeCase(c, g.placement, t.pid, g.idleMaxMs, () => (s0 = bpfStats(t.pid)));
          const s1 = bpfStats(t.pid);
          bpf.set(c.id, { runTimeNs: s1.runTimeNs - s0.runTimeNs, runCount: s1.runCount - s0.runCount, wallNs: r.wallNs });
          await waitIdle(t.pid, g.idleMaxMs);
        } finally {
          await comp?.stop('SIGTERM');
        }
      }
    } finally {
      writeFileSync(BPF_STATS_SYSCTL, before);
      await t.stop();
    }
  }
  return g.cases.map((c) => {
    const b = bpf.get(c.id);
    const bpfNote = b
      ? `; BPF programs during one attached run: ${(b.runTimeNs / 1e6).toFixed(1)} ms over ${b.runCount.toLocaleString()} runs ` +
        `(${b.runCount ? (b.runTimeNs / b.runCount).toFixed(0) : '-'} ns each; all processes on the host) = ${((100 * b.runTimeNs) / b.wallNs).toFixed(1)}% of the run`
      : '';
    const w = withS.get(c.id)!;
    const wo = withoutS.get(c.id)!;
    const r = overheadRatio(w.wall, wo.wall);
    const cpu = overheadRatio(w.cpu, wo.cpu);
    return measured(c.id, r.ratio, {
      lo: r.min,
      hi: r.max,
      n: g.reps,
      cpuRatio: { value: cpu.ratio, lo: cpu.min, hi: cpu.max },
      note:
        `median without ${(median(wo.wall) / 1e9).toFixed(3)} s, with ${(median(w.wall) / 1e9).toFixed(3)} s; ` +
        `tracer: ${g.tracer.name}; ${g.runsPerPhase} run(s) per phase${g.placement.cpus !== null ? `; workload pinned to CPU ${g.placement.cpus}` : ''}` +
        `${g.placement.nice !== null ? `; workload at nice ${g.placement.nice}` : ''}${bpfNote}`,
      bpf: b ? { runTimeNs: b.runTimeNs, runCount: b.runCount, runWallNs: b.wallNs } : undefined,
      samples: { withWallNs: w.wall, withoutWallNs: wo.wall, withCpuNs: w.cpu, withoutCpuNs: wo.cpu },
    });
  });
}

/** Live prerequisites for anything that attaches bpftrace: null when present, else why not. */
export { liveSkipReason } from '../../test/support/live-prereqs.ts';
