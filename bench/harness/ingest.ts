// Ingest throughput: a recorded bpftrace stream (bench/fixtures) replayed through parse → model → rules
// (the Collector), and through parse → model → rules → SQLite, in one process on one core. The fixture is
// replayed in cycles until `events` lines have gone through; each cycle shifts the timestamps past the
// previous one so the model sees time move forward. Lines are prepared before the clock starts.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { StringDecoder } from 'node:string_decoder';
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import { Collector } from '../../collector/pipeline.ts';
import type { ParseSink } from '../../collector/contracts.ts';
import { parseLine } from '../../collector/parse/index.ts';
import { AnonMaps, SyntheticPagemap } from './fakes.ts';
import { loadFixture, shiftedCycle } from './fixture.ts';
import { openStoreSink } from './sinks.ts';

export type IngestStage = 'parse' | 'collector' | 'collector+sqlite';

export interface IngestOptions {
  stage: IngestStage;
  /** Lines to replay (timed); the fixture is cycled. */
  events: number;
  fixture?: string;
  /** Lines replayed untimed first (whole fixture cycles, at most `events`); default 500,000. */
  warmupLines?: number;
}

export interface IngestResult {
  stage: IngestStage;
  lines: number;
  events: number;
  malformed: number;
  anomalies: number;
  wallSeconds: number;
  cpuSeconds: number;
  /** events / CPU second of this process: the rate of one core, whatever else the machine runs. */
  eventsPerCpuSecond: number;
  eventsPerWallSecond: number;
  fixtureLines: number;
  /** SQLite rows written during the timed replay (collector+sqlite only). */
  rowsWritten?: number;
}

const CHUNK_BYTES = 64 * 1024; // one pipe read of bpftrace output

/**
 * The first `count` lines as newline-terminated chunks of about CHUNK_BYTES, as bytes: what a pipe read hands
 * the runner before its stream decodes it (setEncoding). Kept off the JS heap until replayed, as in the
 * product, where a read's text is garbage once its lines are parsed; prepared text here would survive every
 * young-generation GC of the replay and be copied by each one (measured: ~30% of the replay's CPU).
 */
function toChunks(lines: string[], count: number): Buffer[] {
  const chunks: Buffer[] = [];
  let cur: string[] = [];
  let bytes = 0;
  for (let i = 0; i < count; i++) {
    cur.push(lines[i]);
    bytes += lines[i].length + 1;
    if (bytes >= CHUNK_BYTES) {
      chunks.push(Buffer.from(cur.join('\n') + '\n', 'utf8'));
      cur = [];
      bytes = 0;
    }
  }
  if (cur.length) chunks.push(Buffer.from(cur.join('\n') + '\n', 'utf8'));
  return chunks;
}

export async function runIngest(o: IngestOptions): Promise<IngestResult> {
  const fx = loadFixture(o.fixture);
  const base = Number(process.hrtime.bigint());
  const dir = mkdtempSync(join(tmpdir(), 'pinwatch-bench-ingest-'));
  try {
    let events = 0;
    let malformed = 0;
    let sink: ParseSink;
    let collector: Collector | null = null;
    let store: Awaited<ReturnType<typeof openStoreSink>> | null = null;
    if (o.stage === 'parse') {
      sink = {
        event() {
          events++;
        },
        lost() {},
        ready() {},
        malformed() {
          malformed++;
        },
        message() {},
      };
    } else {
      if (o.stage === 'collector+sqlite') store = await openStoreSink(join(dir, 'ingest.db'));
      collector = new Collector({ sinks: store ? [store.sink] : [], pagemap: new SyntheticPagemap(), maps: new AnonMaps() });
      sink = collector.parseSink;
    }
    // One cycle at a time, prepared outside the timed part as ~64 KiB chunks of bytes (what a pipe read gives
    // the runner), then decoded and cut into lines inside it exactly as the runner's stdout stream and
    // BpftraceRunner.onStdout do (StringDecoder, indexOf + slice): line strings are short-lived garbage, as in
    // the product, instead of a long-lived array the GC must keep copying.
    let wallNs = 0;
    let cpuUs = 0;
    let lines = 0;
    const decoder = new StringDecoder('utf8'); // what child.stdout.setEncoding('utf8') runs per read
    const replay = async (chunks: Buffer[], timed: boolean) => {
      const t0 = process.hrtime.bigint();
      const c0 = process.cpuUsage();
      for (const bytes of chunks) {
        const chunk = decoder.write(bytes);
        let start = 0;
        let nl = chunk.indexOf('\n');
        while (nl >= 0) {
          parseLine(chunk.slice(start, nl), sink);
          start = nl + 1;
          nl = chunk.indexOf('\n', start);
        }
        await yieldToLoop(); // between pipe reads the event loop turns: verification timers run
      }
      if (!timed) return;
      wallNs += Number(process.hrtime.bigint() - t0);
      const cu = process.cpuUsage(c0);
      cpuUs += cu.user + cu.system;
    };
    // Warm-up, untimed: JIT tiers, model tables and the heap's generation sizes settle. One fixture cycle was
    // not enough: a second 3M-event replay in the same process ran 15-25% faster than the first (measured).
    const warmCycles = Math.max(1, Math.ceil(Math.min(o.warmupLines ?? 500_000, o.events) / fx.lines.length));
    for (let c = 0; c < warmCycles; c++) await replay(toChunks(shiftedCycle(fx, c, base), fx.lines.length), false);
    const eventsBefore = collector ? collector.counters.events : events;
    const rowsBefore = store?.rowsWritten?.() ?? 0;
    for (let c = warmCycles; lines < o.events; c++) {
      const count = Math.min(fx.lines.length, o.events - lines);
      const chunks = toChunks(shiftedCycle(fx, c, base), count);
      await replay(chunks, true);
      lines += count;
    }
    {
      // The store's pending batch is part of the work: commit it inside the measurement.
      const t0 = process.hrtime.bigint();
      const c0 = process.cpuUsage();
      store?.flush?.();
      wallNs += Number(process.hrtime.bigint() - t0);
      const cu = process.cpuUsage(c0);
      cpuUs += cu.user + cu.system;
    }
    const wallSeconds = wallNs / 1e9;
    const cpuSeconds = cpuUs / 1e6;
    const n = (collector ? collector.counters.events : events) - eventsBefore;
    const result: IngestResult = {
      stage: o.stage,
      lines,
      events: n,
      malformed: collector ? collector.counters.malformed : malformed,
      anomalies: collector ? collector.counters.anomalies : 0,
      wallSeconds,
      cpuSeconds,
      eventsPerCpuSecond: n / cpuSeconds,
      eventsPerWallSecond: n / wallSeconds,
      fixtureLines: fx.lines.length,
      rowsWritten: store?.rowsWritten ? store.rowsWritten() - rowsBefore : undefined,
    };
    collector?.close();
    store?.close();
    return result;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
