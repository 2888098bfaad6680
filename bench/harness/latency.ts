// Latency: from the scenario's divergence-causing syscall (t_hazard_ns, CLOCK_MONOTONIC, printed by the C
// program just before its madvise) to (1) the anomaly row committed in SQLite by `pinwatch record`, and (2) the
// socket.io 'anomaly' message a client of `pinwatch serve` receives. Both ends use CLOCK_MONOTONIC
// (process.hrtime.bigint() here), so the difference is a true interval on this host.
//
// SQLite: a read-only connection polls the anomalies table every POLL_MS while the scenario runs; a row's
// arrival time is the poll that first sees it (resolution POLL_MS). The first anomaly the hazard raises is
// pinned-range-zapped (the madvise itself); pin-pte-divergence follows once the write fault and the pagemap
// check confirm the new pfn — both are reported.
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { io as ioClient, type Socket } from 'socket.io-client';
import { runScenario, factNumber } from '../../scenarios/index.ts';
import { startRecord } from '../../test/support/record.ts';
import { measured, type Figure } from './figures.ts';
import { sleep, startBackground } from './proc.ts';
import { percentile } from './stats.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const POLL_MS = 1;
const SCENARIO = 'uring-dontneed';
/** How long after the scenario exits we still wait for its anomaly rows / messages. */
const LATE_MS = 3000;

export interface LatencyOptions {
  runs: number;
  log?: (s: string) => void;
}

interface Sample {
  /** ms from t_hazard_ns to the first anomaly of the scenario's pid. */
  firstMs: number;
  /** ms to the pin-pte-divergence anomaly (NaN when it did not come). */
  divergenceMs: number;
}

const nowNs = () => Number(process.hrtime.bigint());

function scenarioEnv(): Record<string, string> {
  // The collector needs the pin's pfns read (pagemap) before the hazard: keep the default hold before it;
  // after it, a short hold is enough for the pagemap confirmation (verifyDelayMs 20 ms).
  return { PINWATCH_HOLD_BEFORE_MS: '300', PINWATCH_HOLD_AFTER_MS: '500' };
}

/** Run the scenario once, watching for its anomalies with `watch` (called with its pid); returns t_hazard_ns. */
async function oneRun(watch: (pid: number) => void): Promise<number> {
  const r = await runScenario(SCENARIO, { env: scenarioEnv(), onSpawn: watch });
  if (r.exitCode !== 0) throw new Error(`scenario ${SCENARIO} exited ${r.exitCode}:\n${r.output.slice(-1500)}`);
  return factNumber(r.facts, 't_hazard_ns', 'hazard');
}

function summarize(prefix: 'latency.sqlite' | 'latency.socketio', samples: Sample[], how: string): Figure[] {
  const first = samples.map((s) => s.firstMs);
  const div = samples.map((s) => s.divergenceMs).filter((x) => Number.isFinite(x));
  const note = `${how}; ${samples.length} runs of ${SCENARIO}; to pin-pte-divergence: p50 ${percentile(div, 50).toFixed(1)} ms, p99 ${percentile(div, 99).toFixed(1)} ms (${div.length} runs)`;
  const extra = { n: samples.length, lo: Math.min(...first), hi: Math.max(...first), note, samples: { firstMs: first, divergenceMs: div } };
  return [measured(`${prefix}.p50`, percentile(first, 50), extra), measured(`${prefix}.p99`, percentile(first, 99), extra)];
}

/** SQLite: `pinwatch record --db`, a read-only poller on the same file. */
export async function latencySqlite(o: LatencyOptions): Promise<Figure[]> {
  const dir = mkdtempSync(join(tmpdir(), 'pinwatch-bench-lat-'));
  const dbFile = join(dir, 'latency.db');
  const rec = await startRecord(dbFile);
  const samples: Sample[] = [];
  let db: Database.Database | null = null;
  try {
    db = new Database(dbFile, { readonly: true, fileMustExist: true });
    const rows = db.prepare('SELECT seq, rule FROM anomalies WHERE pid = ? ORDER BY seq');
    for (let i = 0; i < o.runs; i++) {
      let pid = -1;
      let firstNs = NaN;
      let divNs = NaN;
      let done = false;
      let lateUntil = Infinity;
      const poll = async () => {
        for (;;) {
          if (pid > 0) {
            const rs = rows.all(pid) as { seq: number; rule: string }[];
            const t = nowNs();
            if (rs.length && Number.isNaN(firstNs)) firstNs = t;
            if (Number.isNaN(divNs) && rs.some((r) => r.rule === 'pin-pte-divergence')) divNs = t;
          }
          if (!Number.isNaN(firstNs) && !Number.isNaN(divNs)) return;
          if (done && nowNs() > lateUntil) return;
          await sleep(POLL_MS);
        }
      };
      const poller = poll();
      const tHazard = await oneRun((p) => (pid = p));
      lateUntil = nowNs() + LATE_MS * 1e6;
      done = true;
      await poller;
      if (Number.isNaN(firstNs)) throw new Error(`no anomaly row for ${SCENARIO} pid ${pid} within ${LATE_MS} ms of its exit\n${rec.stderr().slice(-1500)}`);
      samples.push({ firstMs: (firstNs - tHazard) / 1e6, divergenceMs: (divNs - tHazard) / 1e6 });
      o.log?.(`  sqlite run ${i + 1}/${o.runs}: first anomaly ${((firstNs - tHazard) / 1e6).toFixed(1)} ms, divergence ${((divNs - tHazard) / 1e6).toFixed(1)} ms`);
    }
  } finally {
    db?.close();
    const code = await rec.stop('SIGINT');
    rmSync(dir, { recursive: true, force: true });
    if (code !== 0) o.log?.(`  warning: pinwatch record exited ${code}`);
  }
  return summarize('latency.sqlite', samples, `SQLite polled every ${POLL_MS} ms by a reader process`);
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

/** socket.io: `pinwatch serve` (live capture), one client that resumes from 0 and timestamps each 'anomaly'. */
export async function latencySocketio(o: LatencyOptions): Promise<Figure[]> {
  const dir = mkdtempSync(join(tmpdir(), 'pinwatch-bench-serve-'));
  const port = await freePort();
  const serve = await startBackground(
    [process.execPath, 'bin/pinwatch.js', 'serve', '--port', String(port), '--host', '127.0.0.1', '--db', join(dir, 'serve.db')],
    /dashboard listening|dashboard at http/,
    { cwd: ROOT, timeoutMs: 240_000 },
  );
  let socket: Socket | null = null;
  const samples: Sample[] = [];
  try {
    // The http server and the live capture come up in either order: wait for both.
    const capture = /live capture (started|unavailable|failed)/;
    const t0 = Date.now();
    while (!capture.test(serve.stdout() + serve.stderr()) && Date.now() - t0 < 240_000) await sleep(50);
    if (!/live capture started/.test(serve.stdout() + serve.stderr())) {
      throw new Error(`pinwatch serve has no live capture:\n${(serve.stdout() + serve.stderr()).slice(-1500)}`);
    }
    const arrivals: { pid: number; rule: string; tNs: number }[] = [];
    socket = ioClient(`http://127.0.0.1:${port}`, { transports: ['websocket'], query: { src: 'main' }, reconnection: false });
    socket.on('anomaly', (a: { pid: number; rule: string }) => arrivals.push({ pid: a.pid, rule: a.rule, tNs: nowNs() }));
    await new Promise<void>((resolve, reject) => {
      socket!.once('connect', () => resolve());
      socket!.once('connect_error', (e) => reject(new Error(`socket.io connect to pinwatch serve failed: ${e.message}`)));
    });
    socket.emit('resume', 0);
    for (let i = 0; i < o.runs; i++) {
      let pid = -1;
      const tHazard = await oneRun((p) => (pid = p));
      const until = nowNs() + LATE_MS * 1e6;
      const mine = () => arrivals.filter((a) => a.pid === pid);
      while (nowNs() < until && !mine().some((a) => a.rule === 'pin-pte-divergence')) await sleep(5);
      const got = mine();
      if (!got.length) throw new Error(`no socket.io 'anomaly' for ${SCENARIO} pid ${pid} within ${LATE_MS} ms of its exit`);
      const div = got.find((a) => a.rule === 'pin-pte-divergence');
      samples.push({ firstMs: (got[0].tNs - tHazard) / 1e6, divergenceMs: div ? (div.tNs - tHazard) / 1e6 : NaN });
      o.log?.(`  socket.io run ${i + 1}/${o.runs}: first anomaly ${samples[i].firstMs.toFixed(1)} ms, divergence ${samples[i].divergenceMs.toFixed(1)} ms`);
    }
  } finally {
    socket?.close();
    await serve.stop('SIGINT');
    rmSync(dir, { recursive: true, force: true });
  }
  return summarize('latency.socketio', samples, "socket.io-client (websocket) timestamps each 'anomaly' on arrival");
}

export function latencyLanded(): string | null {
  if (!existsSync(join(ROOT, 'bin/pinwatch.js'))) return 'bin/pinwatch.js (pinwatch record/serve) has not landed';
  return null;
}
