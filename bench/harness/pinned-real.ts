// Pins measured for real on this machine (issue 11): `pinwatch record` while test/live/fixtures/held-pin.c holds
// 1, 4, 8 GiB registered as io_uring fixed buffers of 1 GiB each (HELD_PAGES=262144, HELD_BUFFERS=n,
// HELD_THP=1: 2 MiB-aligned and MADV_HUGEPAGE, as guest RAM usually is). For each size, a fresh recorder:
//   1. attach, wait until idle; sample the collector's RSS (the node process) and its bpftrace children's RSS, and
//      its idle CPU over the window — the 0 GiB point of the regression;
//   2. start held-pin; from its "pinned" fact line (printed right after IORING_REGISTER_BUFFERS returned) time until
//      the pins rows are in the SQLite file, and until every page of every pin is (pin_page_runs);
//   3. wait until the collector is idle again, sample RSS, and CPU (utime + stime from /proc/PID/stat, 1 s steps)
//      over the window: what holding the pins costs it at rest (periodic pagemap verification, timers).
// Extrapolation to 256 GiB, stated: least-squares line through every (GiB, RSS) point (the pre-pin samples at
// 0 GiB included): RSS(256) = intercept + slope × 256; the same for CPU. Sizes that do not fit in MemAvailable
// (size + 2 GiB headroom) are skipped, with the reason.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { buildSource, parseFacts } from '../../scenarios/index.ts';
import { startRecord } from '../../test/support/record.ts';
import { procCpuTicks, processTree, waitIdle } from './overhead.ts';
import { sleep, startBackground } from './proc.ts';

const HELD_PIN_SOURCE = fileURLToPath(new URL('../../test/live/fixtures/held-pin.c', import.meta.url));
const PAGES_PER_GIB = 262_144;
const CLK_TCK = 100;
const HEADROOM_GIB = 2;
const DB_POLL_MS = 20;
/** Longest wait for the recorder to be idle (< 10 % of a CPU over 300 ms) before a window. */
const SETTLE_MAX_MS = 15_000;

export interface RealPinOptions {
  sizesGiB: number[];
  windowMs: number;
  log?: (s: string) => void;
}

export interface RealPinSample {
  gib: number;
  /** Collector (node) RSS, MiB: before the pin (idle) and with it held (idle again). */
  rssBeforeMiB: number;
  rssMiB: number;
  /** bpftrace children's RSS, MiB, with the pin held. */
  bpftraceRssMiB: number;
  /** CPU of the collector's whole process tree, % of one core: before the pin, with it (per 1 s step). */
  cpuBeforePct: number;
  bpftraceCpuBeforePct: number;
  cpuPct: number;
  cpuStepsPct: number[];
  /** Of that, the bpftrace children. */
  bpftraceCpuPct: number;
  /** From the "pinned" fact to the pins rows / the last page row of every pin, in the SQLite file. */
  toPinRowsS: number;
  toPageRowsS: number | null;
  pinsRecorded: number;
  pagesRecorded: number;
  /** held-pin's AnonHugePages (THP backing of the pinned memory), MiB. */
  anonHugeMiB: number;
  /** Time held-pin took to fault in and register the buffers, s. */
  pinSetupS: number;
  /** From the page rows to the fault filter attached and the collector idle, s (NaN: no fault filter came). */
  settleS: number;
}

export interface RealPinResult {
  samples: RealPinSample[];
  skipped: { gib: number; reason: string }[];
  rss: LinearFit;
  cpu: LinearFit;
}

export interface LinearFit {
  slope: number;
  intercept: number;
  at256: number;
  points: number;
}

/** Least squares y = intercept + slope·x. */
export function linearFit(xs: readonly number[], ys: readonly number[]): LinearFit {
  const n = xs.length;
  const mx = xs.reduce((s, x) => s + x, 0) / n;
  const my = ys.reduce((s, y) => s + y, 0) / n;
  let sxy = 0;
  let sxx = 0;
  for (let i = 0; i < n; i++) {
    sxy += (xs[i] - mx) * (ys[i] - my);
    sxx += (xs[i] - mx) ** 2;
  }
  const slope = sxx > 0 ? sxy / sxx : 0;
  const intercept = my - slope * mx;
  return { slope, intercept, at256: intercept + slope * 256, points: n };
}

function statusKb(pid: number, field: string): number {
  try {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

function comm(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return '';
  }
}

function memAvailableGiB(): number {
  const kb = /^MemAvailable:\s+(\d+) kB/m.exec(readFileSync('/proc/meminfo', 'utf8'))?.[1];
  return kb ? Number(kb) / 2 ** 20 : 0;
}

function anonHugeMiB(pid: number): number {
  try {
    const kb = /^AnonHugePages:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'))?.[1];
    return kb ? Number(kb) / 1024 : 0;
  } catch {
    return NaN;
  }
}

interface TreeSample {
  collectorRssMiB: number;
  bpftraceRssMiB: number;
}

function treeRss(root: number): TreeSample {
  let bpf = 0;
  for (const pid of processTree(root)) if (pid !== root && comm(pid) === 'bpftrace') bpf += statusKb(pid, 'VmRSS');
  return { collectorRssMiB: statusKb(root, 'VmRSS') / 1024, bpftraceRssMiB: bpf / 1024 };
}

/** CPU ticks per process of the tree (utime + stime), and which of them are bpftrace. */
function treeTicks(root: number): Map<number, { ticks: number; bpftrace: boolean }> {
  const out = new Map<number, { ticks: number; bpftrace: boolean }>();
  for (const pid of processTree(root)) out.set(pid, { ticks: procCpuTicks(pid), bpftrace: pid !== root && comm(pid) === 'bpftrace' });
  return out;
}

/**
 * CPU of the tree over windowMs in 1 s steps: % of one core per step, and the bpftrace part of the whole. Per
 * process deltas: a process that ended during a step counts nothing for it (its ticks are not readable any more),
 * one that started counts from zero.
 */
async function cpuWindow(root: number, windowMs: number): Promise<{ pct: number; steps: number[]; bpftracePct: number }> {
  const steps: number[] = [];
  const stepMs = Math.min(1000, windowMs);
  let total = 0;
  let bpf = 0;
  let wall = 0;
  for (let t = 0; t < windowMs; t += stepMs) {
    const a = treeTicks(root);
    const t0 = performance.now();
    await sleep(stepMs);
    const b = treeTicks(root);
    const dt = performance.now() - t0;
    let step = 0;
    for (const [pid, x] of b) {
      const d = Math.max(0, x.ticks - (a.get(pid)?.ticks ?? 0));
      step += d;
      if (x.bpftrace) bpf += d;
    }
    total += step;
    wall += dt;
    steps.push((100 * step * 1000) / CLK_TCK / dt);
  }
  return { pct: (100 * total * 1000) / CLK_TCK / wall, steps, bpftracePct: (100 * bpf * 1000) / CLK_TCK / wall };
}

/** Poll the recorder's SQLite file until `done` says so (a read-only connection, opened once the file exists). */
async function pollDb<T>(file: string, timeoutMs: number, probe: (db: Database.Database) => T | null): Promise<T> {
  const t0 = Date.now();
  let db: Database.Database | null = null;
  try {
    for (;;) {
      try {
        db ??= new Database(file, { readonly: true, fileMustExist: true });
        const r = probe(db);
        if (r !== null) return r;
      } catch {
        /* not created yet, or a table not there yet */
      }
      if (Date.now() - t0 > timeoutMs) throw new Error(`${file}: condition not reached after ${timeoutMs} ms`);
      await sleep(DB_POLL_MS);
    }
  } finally {
    db?.close();
  }
}

async function oneSize(bin: string, gib: number, o: RealPinOptions): Promise<RealPinSample> {
  const log = o.log ?? (() => {});
  const dir = mkdtempSync(join(tmpdir(), 'pinwatch-bench-real-'));
  const dbFile = join(dir, 'real.db');
  const rec = await startRecord(dbFile);
  const root = rec.child.pid!;
  let held: Awaited<ReturnType<typeof startBackground>> | null = null;
  try {
    await waitIdle(root, SETTLE_MAX_MS);
    const before = treeRss(root);
    const cpuBefore = await cpuWindow(root, o.windowMs);
    const tStart = performance.now();
    held = await startBackground([bin], /"step":"pinned"/, {
      env: { ...process.env, HELD_PAGES: String(PAGES_PER_GIB), HELD_BUFFERS: String(gib), HELD_THP: '1' },
      timeoutMs: 180_000,
    });
    const tPinned = performance.now();
    const fact = parseFacts(held.stdout()).find((f) => f.step === 'pinned')!;
    const pid = Number(fact.pid);
    const pins = await pollDb(dbFile, 120_000, (db) => {
      const rows = db.prepare('SELECT id, pages FROM pins WHERE pid = ? AND released_ns IS NULL').all(pid) as { id: number; pages: number }[];
      return rows.length >= gib ? rows : null;
    });
    const tPinRows = performance.now();
    let tPageRows: number | null = null;
    let pagesRecorded = 0;
    try {
      pagesRecorded = await pollDb(dbFile, 120_000, (db) => {
        // Every page of every pin stored with its pinned pfn: the runs (pin_page_runs) add up to the pin's pages.
        const stored = db.prepare('SELECT COALESCE(SUM(count), 0) AS n FROM pin_page_runs WHERE pin_id = ? AND pinned_pfn IS NOT NULL');
        return pins.every((p) => (stored.get(p.id) as { n: number }).n === p.pages) ? pins.reduce((s, p) => s + p.pages, 0) : null;
      });
      if (pagesRecorded >= 0) tPageRows = performance.now();
    } catch (err) {
      log(`   ${gib} GiB: page rows not complete: ${(err as Error).message}`);
    }
    // Holding intact pins, the collector attaches no fault filter (5.9+): measured once it is idle.
    const settleMs = await waitIdle(root, SETTLE_MAX_MS);
    const after = treeRss(root);
    const cpu = await cpuWindow(root, o.windowMs);
    const sample: RealPinSample = {
      gib,
      rssBeforeMiB: before.collectorRssMiB,
      rssMiB: after.collectorRssMiB,
      bpftraceRssMiB: after.bpftraceRssMiB,
      cpuBeforePct: cpuBefore.pct,
      bpftraceCpuBeforePct: cpuBefore.bpftracePct,
      cpuPct: cpu.pct,
      cpuStepsPct: cpu.steps,
      bpftraceCpuPct: cpu.bpftracePct,
      toPinRowsS: (tPinRows - tPinned) / 1000,
      toPageRowsS: tPageRows === null ? null : (tPageRows - tPinned) / 1000,
      pinsRecorded: pins.length,
      pagesRecorded,
      anonHugeMiB: anonHugeMiB(pid),
      pinSetupS: (tPinned - tStart) / 1000,
      settleS: settleMs / 1000,
    };
    log(
      `   ${gib} GiB pinned: collector RSS ${sample.rssBeforeMiB.toFixed(0)} → ${sample.rssMiB.toFixed(0)} MiB (bpftrace ${sample.bpftraceRssMiB.toFixed(0)} MiB), ` +
        `CPU ${sample.cpuBeforePct.toFixed(1)} → ${sample.cpuPct.toFixed(1)} %, pin → rows ${sample.toPinRowsS.toFixed(2)} s / pages ${sample.toPageRowsS?.toFixed(2) ?? '-'} s, ` +
        `THP ${sample.anonHugeMiB.toFixed(0)} MiB`,
    );
    return sample;
  } finally {
    await held?.stop('SIGTERM', 30_000);
    const code = await rec.stop('SIGINT');
    rmSync(dir, { recursive: true, force: true });
    if (code !== 0) log(`   pinwatch record exited ${code} on SIGINT: ${rec.stderr().slice(-500)}`);
  }
}

export async function measureRealPins(o: RealPinOptions): Promise<RealPinResult> {
  const bin = await buildSource(HELD_PIN_SOURCE, 'held-pin');
  const samples: RealPinSample[] = [];
  const skipped: RealPinResult['skipped'] = [];
  for (const gib of o.sizesGiB) {
    const avail = memAvailableGiB();
    if (avail < gib + HEADROOM_GIB) {
      const reason = `${gib} GiB: MemAvailable ${avail.toFixed(1)} GiB < ${gib} + ${HEADROOM_GIB} GiB headroom`;
      o.log?.(`   skipped ${reason}`);
      skipped.push({ gib, reason });
      continue;
    }
    samples.push(await oneSize(bin, gib, o));
  }
  const xs = samples.flatMap((s) => [0, s.gib]);
  return {
    samples,
    skipped,
    rss: linearFit(xs, samples.flatMap((s) => [s.rssBeforeMiB, s.rssMiB])),
    cpu: linearFit(xs, samples.flatMap((s) => [s.cpuBeforePct, s.cpuPct])),
  };
}
