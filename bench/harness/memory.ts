// Memory of the collector, in-process: RSS while a long synthetic event stream flows through the Collector
// (and the SQLite store, when it is there), and RSS with 10k live pins / 1M pinned pages. /proc is replaced
// by arithmetic fakes (fakes.ts): the synthetic pids do not exist.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import v8 from 'node:v8';
import vm from 'node:vm';
import { Collector } from '../../collector/pipeline.ts';
import type { CollectorSink } from '../../collector/contracts.ts';
import { AnonMaps, SyntheticPagemap } from './fakes.ts';
import { openStoreSink } from './sinks.ts';
import { manyPins, SyntheticHost } from './synthetic.ts';

const MiB = 2 ** 20;

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;

export interface MemoryStreamOptions {
  events: number;
  /** Store events in SQLite too (a temp file), as `pinwatch record` does. */
  store: boolean;
}

export interface MemoryStreamResult {
  events: number;
  store: string;
  samples: { events: number; rssMiB: number; heapUsedMiB: number }[];
  rssEarlyMiB: number;
  rssEndMiB: number;
  rssPeakMiB: number;
  rssGrowthMiB: number;
  /** heapUsed after a full GC at 10% and at the end: what survives (a leak shows here first). */
  liveHeapEarlyMiB: number;
  liveHeapEndMiB: number;
  anomalies: number;
  seconds: number;
}

async function sinksFor(store: boolean, dir: string): Promise<{ sinks: CollectorSink[]; close(): void; name: string }> {
  if (!store) return { sinks: [], close() {}, name: 'none' };
  const s = await openStoreSink(join(dir, 'memory.db'));
  return { sinks: [s.sink], close: () => s.close(), name: s.name };
}

export async function memoryStream(o: MemoryStreamOptions): Promise<MemoryStreamResult> {
  const dir = mkdtempSync(join(tmpdir(), 'pinwatch-bench-mem-'));
  try {
    const out = await sinksFor(o.store, dir);
    const collector = new Collector({ sinks: out.sinks, pagemap: new SyntheticPagemap(), maps: new AnonMaps() });
    const host = new SyntheticHost();
    const step = Math.max(1000, Math.floor(o.events / 100));
    const samples: MemoryStreamResult['samples'] = [];
    const early = Math.floor(o.events / 10);
    let liveHeapEarly = 0;
    const t0 = process.hrtime.bigint();
    const ingest = (e: Parameters<Collector['ingest']>[0]) => collector.ingest(e);
    for (let done = 0; done < o.events; ) {
      // Chunks the size of a pipe read, with a turn of the event loop between them (verification timers run).
      const chunk = Math.min(512, o.events - done);
      host.run(chunk, ingest);
      done += chunk;
      await yieldToLoop();
      if (done % step < chunk || done === o.events) {
        const m = process.memoryUsage();
        samples.push({ events: done, rssMiB: m.rss / MiB, heapUsedMiB: m.heapUsed / MiB });
        if (liveHeapEarly === 0 && done >= early) {
          gc();
          liveHeapEarly = process.memoryUsage().heapUsed / MiB;
        }
      }
    }
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    collector.close();
    gc();
    const liveHeapEnd = process.memoryUsage().heapUsed / MiB;
    out.close();
    const earlySample = samples.find((s) => s.events >= early)!;
    const end = samples[samples.length - 1];
    return {
      events: o.events,
      store: out.name,
      samples,
      rssEarlyMiB: earlySample.rssMiB,
      rssEndMiB: end.rssMiB,
      rssPeakMiB: Math.max(...samples.map((s) => s.rssMiB)),
      rssGrowthMiB: end.rssMiB - earlySample.rssMiB,
      liveHeapEarlyMiB: liveHeapEarly,
      liveHeapEndMiB: liveHeapEnd,
      anomalies: collector.counters.anomalies,
      seconds,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export interface MemoryPinsOptions {
  pins: number;
  pagesPerPin: number;
  pinsPerPid: number;
  store: boolean;
}

export interface MemoryPinsResult {
  pins: number;
  pages: number;
  livePins: number;
  rssBeforeMiB: number;
  rssAfterMiB: number;
  rssDeltaMiB: number;
  liveHeapDeltaMiB: number;
  /** One periodic verification pass over every pinned page (synthetic pagemap), ms. */
  verifyPassMs: number;
  store: string;
}

export async function memoryPins(o: MemoryPinsOptions): Promise<MemoryPinsResult> {
  const dir = mkdtempSync(join(tmpdir(), 'pinwatch-bench-pins-'));
  try {
    const out = await sinksFor(o.store, dir);
    const pagemap = new SyntheticPagemap();
    // Periodic verification far apart: the pass is timed explicitly below, not left to run mid-measurement.
    const collector = new Collector({ sinks: out.sinks, pagemap, maps: new AnonMaps(), config: { verifyIntervalMs: 3_600_000 } });
    gc();
    await yieldToLoop();
    const before = process.memoryUsage();
    let n = 0;
    for (const e of manyPins(o.pins, o.pagesPerPin, o.pinsPerPid)) {
      collector.ingest(e);
      if (++n % 512 === 0) await yieldToLoop();
    }
    await yieldToLoop();
    const livePins = collector.model.livePins ? [...collector.model.livePins()].length : -1;
    const t0 = process.hrtime.bigint();
    collector.verifyPass();
    const verifyPassMs = Number(process.hrtime.bigint() - t0) / 1e6;
    gc();
    const after = process.memoryUsage();
    const result: MemoryPinsResult = {
      pins: o.pins,
      pages: o.pins * o.pagesPerPin,
      livePins,
      rssBeforeMiB: before.rss / MiB,
      rssAfterMiB: after.rss / MiB,
      rssDeltaMiB: (after.rss - before.rss) / MiB,
      liveHeapDeltaMiB: (after.heapUsed - before.heapUsed) / MiB,
      verifyPassMs,
      store: out.name,
    };
    collector.close();
    out.close();
    return result;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
