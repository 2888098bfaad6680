// The ingest fixture: a recorded stream of bpftrace stdout lines (bench/fixtures/stream.ndjson.gz, made by
// bench/fixtures/record.ts) and its replay in cycles with timestamps moved forward each cycle.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';

export const DEFAULT_FIXTURE = fileURLToPath(new URL('../fixtures/stream.ndjson.gz', import.meta.url));

export interface Fixture {
  path: string;
  lines: string[];
  firstTs: number;
  lastTs: number;
}

const DATA = '"data": "';

/** The event timestamp of a printf line (second tab-separated field of data), or null for other records. */
export function lineTs(line: string): number | null {
  const d = line.indexOf(DATA);
  if (d < 0) return null;
  const a = line.indexOf('\\t', d);
  if (a < 0) return null;
  const b = line.indexOf('\\t', a + 2);
  if (b < 0) return null;
  const ts = Number(line.slice(a + 2, b));
  return Number.isFinite(ts) ? ts : null;
}

export function loadFixture(path = DEFAULT_FIXTURE): Fixture {
  const text = gunzipSync(readFileSync(path)).toString('utf8');
  const lines = text.split('\n').filter((l) => l.length > 0);
  let firstTs = Infinity;
  let lastTs = -Infinity;
  for (const l of lines) {
    const ts = lineTs(l);
    if (ts === null || ts === 0) continue;
    if (ts < firstTs) firstTs = ts;
    if (ts > lastTs) lastTs = ts;
  }
  if (!Number.isFinite(firstTs)) throw new Error(`${path}: no timestamped lines`);
  return { path, lines, firstTs, lastTs };
}

/**
 * The fixture's lines for replay cycle `c`: timestamps rebased to `baseNs` and compressed so that the cycle
 * spans one microsecond per line (a replay near 1M lines/s keeps event time close to the clock the verifier
 * reads), each cycle after the previous one. Order and reorderings within the recording are kept.
 */
export function shiftedCycle(fx: Fixture, c: number, baseNs: number): string[] {
  const span = Math.max(1, fx.lastTs - fx.firstTs);
  const cycleNs = fx.lines.length * 1000;
  const k = cycleNs / span;
  const offset = baseNs + c * (cycleNs + 1000);
  const out = new Array<string>(fx.lines.length);
  for (let i = 0; i < fx.lines.length; i++) {
    const line = fx.lines[i];
    const d = line.indexOf(DATA);
    const a = d < 0 ? -1 : line.indexOf('\\t', d);
    const b = a < 0 ? -1 : line.indexOf('\\t', a + 2);
    const ts = b < 0 ? NaN : Number(line.slice(a + 2, b));
    if (!Number.isFinite(ts) || ts === 0) {
      out[i] = line;
      continue;
    }
    out[i] = line.slice(0, a + 2) + String(Math.round(offset + (ts - fx.firstTs) * k)) + line.slice(b);
  }
  return out;
}
