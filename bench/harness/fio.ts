// fio with io_uring fixed buffers (registered buffers: pins live for the whole run, the hypervisor-like steady
// state) — IOPS with `pinwatch record` running and without, alternated (ABBA pairs), ratio of medians with the
// per-pair range. While the collector runs, the CPU its processes use during the fio run is read from
// /proc (node = the collector's user space, bpftrace = the main program + the fault filter), to say where a cost is.
import { execFile, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { measured, type Figure } from './figures.ts';
import { pinwatchRecord, processCpu, waitIdle } from './overhead.ts';
import { placed, type Placement } from './proc.ts';
import { median } from './stats.ts';

const run = promisify(execFile);

export interface FioOptions {
  reps: number;
  seconds: number;
  sizeMiB: number;
  placement: Placement;
  log?: (line: string) => void;
}

/** Why fio cannot run here, or null. */
export function fioSkipReason(): string | null {
  try {
    execFileSync('fio', ['--version'], { stdio: 'ignore' });
    return null;
  } catch {
    return 'fio is not installed (apt-get install -y fio)';
  }
}

/** The fio job: 4k random reads, O_DIRECT, io_uring with registered buffers and files, iodepth 32. */
export function fioArgs(file: string, sizeMiB: number, seconds: number): string[] {
  return [
    '--name=r', '--ioengine=io_uring', '--fixedbufs', '--registerfiles', '--direct=1', '--rw=randread', '--bs=4k',
    '--iodepth=32', `--size=${sizeMiB}M`, `--runtime=${seconds}`, '--time_based', `--filename=${file}`, '--output-format=json',
  ];
}

/** Read IOPS of one fio JSON report. */
export function fioIops(json: string): number {
  return fioResult(json).iops;
}

/** IOPS and fio's own CPU seconds per I/O (usr + sys, what the in-kernel probes add to each I/O shows here). */
export function fioResult(json: string): { iops: number; cpuPerIo: number } {
  const start = json.indexOf('{'); // fio may print notes before the JSON
  const doc = JSON.parse(json.slice(start)) as { jobs: { read: { iops: number }; usr_cpu: number; sys_cpu: number }[] };
  const iops = doc.jobs.reduce((s, j) => s + j.read.iops, 0);
  if (!(iops > 0)) throw new Error('fio reported no read IOPS');
  const cpu = doc.jobs.reduce((s, j) => s + (j.usr_cpu + j.sys_cpu) / 100, 0); // CPUs busy, on average
  return { iops, cpuPerIo: cpu / iops };
}

async function fio(o: FioOptions, file: string, seconds: number): Promise<{ iops: number; cpuPerIo: number }> {
  const argv = placed(o.placement, ['fio', ...fioArgs(file, o.sizeMiB, seconds)]);
  const out = await run(argv[0], argv.slice(1), { maxBuffer: 16 << 20 });
  return fioResult(out.stdout);
}

export async function measureFio(o: FioOptions): Promise<Figure[]> {
  const log = o.log ?? (() => {});
  const dir = mkdtempSync(join(tmpdir(), 'pinwatch-fio-')); // O_DIRECT: not tmpfs (here /tmp is ext4)
  const file = join(dir, 'fio.dat');
  try {
    await fio(o, file, 1); // lays the file out and warms the page tables up; not counted
    const on: number[] = [];
    const off: number[] = [];
    const onCpu: number[] = [];
    const offCpu: number[] = [];
    const cpu: { node: number; bpftrace: number; seconds: number }[] = [];
    let slowStops = 0;
    for (let i = 0; i < o.reps; i++) {
      const order = i % 2 === 0 ? ['off', 'on'] : ['on', 'off'];
      for (const which of order) {
        if (which === 'off') {
          const r = await fio(o, file, o.seconds);
          off.push(r.iops);
          offCpu.push(r.cpuPerIo);
          continue;
        }
        const rec = await pinwatchRecord().attach();
        try {
          await waitIdle(rec.pid, 10_000);
          const before = processCpu(rec.pid);
          const t0 = Date.now();
          const r = await fio(o, file, o.seconds);
          on.push(r.iops);
          onCpu.push(r.cpuPerIo);
          const after = processCpu(rec.pid);
          cpu.push({ node: after.node - before.node, bpftrace: after.bpftrace - before.bpftrace, seconds: (Date.now() - t0) / 1000 });
        } finally {
          // The IOPS were measured while it ran: a collector slow to exit on a loaded host (the harness kills it
          // after 30 s) is counted in the note, not a failed figure.
          await rec.stop().catch((err: Error) => {
            slowStops++;
            log(`   warning: ${err.message.split('\n')[0]}`);
          });
        }
      }
      log(`   pair ${i + 1}: off ${Math.round(off[i]).toLocaleString()} IOPS, on ${Math.round(on[i]).toLocaleString()} IOPS (collector CPU ${(cpu[i].node / cpu[i].seconds * 100).toFixed(1)}% node, ${(cpu[i].bpftrace / cpu[i].seconds * 100).toFixed(1)}% bpftrace)`);
    }
    const perPair = on.map((x, i) => x / off[i]);
    // fio's CPU per I/O, with / without: above 1 when the traced path makes each I/O dearer (BPF on its syscalls)
    const cpuPairs = onCpu.map((x, i) => x / offCpu[i]);
    const cpuRatio = { value: median(onCpu) / median(offCpu), lo: Math.min(...cpuPairs), hi: Math.max(...cpuPairs) };
    const pct = (k: 'node' | 'bpftrace') => median(cpu.map((c) => (c[k] / c.seconds) * 100));
    const note =
      `fio ${fioArgs('<tmp>', o.sizeMiB, o.seconds).filter((a) => a !== '--output-format=json').join(' ')}; ${o.reps} ABBA pair(s); ` +
      `during the recorded runs the collector used ${pct('node').toFixed(1)}% of a CPU in node and ${pct('bpftrace').toFixed(1)}% in bpftrace (median; main program + fault filter)` +
      (slowStops ? `; ${slowStops} of ${o.reps} collector(s) did not exit within 30 s of SIGINT (killed)` : '');
    return [
      measured('fio.iops.off', median(off), { lo: Math.min(...off), hi: Math.max(...off), n: off.length, note, samples: { iops: off } }),
      measured('fio.iops.on', median(on), { lo: Math.min(...on), hi: Math.max(...on), n: on.length, note, samples: { iops: on } }),
      measured('fio.ratio', median(on) / median(off), {
        lo: Math.min(...perPair),
        hi: Math.max(...perPair),
        n: perPair.length,
        note: `${note}; last column: fio's own CPU time per I/O, on / off`,
        cpuRatio,
        samples: { perPair, cpuPerIoOn: onCpu, cpuPerIoOff: offCpu, nodeCpuSeconds: cpu.map((c) => c.node), bpftraceCpuSeconds: cpu.map((c) => c.bpftrace) },
      }),
    ];
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
