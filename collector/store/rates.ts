// Event rates from stored CLOCK_MONOTONIC timestamps: per wall-clock second since a time (live history), or in
// buckets over a whole recording (replay); and each session's clock offset that turns one into the other.
import type { EventKind } from '../../schema/events.ts';
import type { EventRates } from '../../schema/protocol.ts';
import type { SessionInfo } from '../../schema/session.ts';
import { recordedClockOffset } from './meta.ts';
import type { Statements } from './statements.ts';

/** Does the file have the event_counts table (schema version 4; older files stored every event)? */
export function hasCounts(q: Statements): boolean {
  return q.get(`SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'event_counts'`).get() !== undefined;
}

/** wall ms − CLOCK_MONOTONIC ms for a session (recorded at startSession; estimated for files that lack it). */
export function clockOffset(q: Statements, sessionId: number): number | null {
  const recorded = recordedClockOffset(q.db, sessionId);
  if (recorded !== null) return recorded;
  const r = q.get(`SELECT s.started_ms AS w, (SELECT min(ts_ns) FROM events WHERE session_id = s.id) AS t FROM sessions s WHERE s.id = ?`).get(
    sessionId,
  ) as { w: number; t: number | null } | undefined;
  if (!r || r.t === null) return null;
  return r.w - r.t / 1e6;
}

/**
 * Events per kind per wall-clock second since `sinceWallMs` (1 s buckets; wallMs is the end of the bucket),
 * from the stored CLOCK_MONOTONIC timestamps and each session's clock offset.
 */
export function eventRatesSince(q: Statements, sessions: readonly SessionInfo[], sinceWallMs: number): EventRates[] {
  const buckets = new Map<number, Partial<Record<EventKind, number>>>();
  for (const s of sessions) {
    if (s.endedWallMs !== null && s.endedWallMs < sinceWallMs) continue;
    const offset = clockOffset(q, s.id);
    if (offset === null) continue;
    const minTs = (sinceWallMs - offset) * 1e6;
    const add = (rows: { kind: EventKind; sec: number; n: number }[]) => {
      for (const r of rows) {
        const end = (r.sec + 1) * 1000;
        let c = buckets.get(end);
        if (!c) buckets.set(end, (c = {}));
        c[r.kind] = (c[r.kind] ?? 0) + r.n;
      }
    };
    const from = firstSeqAtOrAfter(q, s.id, minTs);
    if (from !== null) {
      add(
        q.get(
          `SELECT kind, CAST((ts_ns / 1000000.0 + ?) / 1000 AS INTEGER) AS sec, count(*) AS n FROM events
           WHERE seq >= ? AND session_id = ? AND ts_ns >= ? GROUP BY sec, kind`,
        ).all(offset, from, s.id, minTs) as { kind: EventKind; sec: number; n: number }[],
      );
    }
    // Counted events (not stored as rows): each monotonic second goes to the wall-clock second holding its middle.
    if (hasCounts(q)) {
      add(
        q.get(
          `SELECT kind, w AS sec, sum(n) AS n FROM (SELECT kind, n, CAST(((sec * 1000 + 500) + ?) / 1000 AS INTEGER) AS w
             FROM event_counts WHERE session_id = ? AND sec >= ?) GROUP BY w, kind`,
        ).all(offset, s.id, Math.floor(minTs / 1e9)) as { kind: EventKind; sec: number; n: number }[],
      );
    }
  }
  return [...buckets.entries()].sort((a, b) => a[0] - b[0]).map(([wallMs, counts]) => ({ wallMs, counts }));
}

/** First seq of a session with ts_ns >= minTs (binary search over the seq primary key: seq order is time order). */
function firstSeqAtOrAfter(q: Statements, sessionId: number, minTs: number): number | null {
  const range = q.get(`SELECT min(seq) AS lo, max(seq) AS hi FROM events WHERE session_id = ?`).get(sessionId) as {
    lo: number | null;
    hi: number | null;
  };
  if (range.lo === null || range.hi === null) return null;
  const at = q.get(`SELECT ts_ns FROM events WHERE seq >= ? ORDER BY seq LIMIT 1`);
  let lo = range.lo;
  let hi = range.hi;
  if ((at.get(hi) as { ts_ns: number }).ts_ns < minTs) return null;
  while (lo < hi) {
    const mid = Math.floor((lo + hi) / 2);
    const r = at.get(mid) as { ts_ns: number } | undefined;
    if (r && r.ts_ns >= minTs) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

/**
 * Event counts per kind in time buckets over the whole recording (≤ maxBuckets; 1 s when it fits), per second
 * whatever the bucket width; `offset` is the wall − monotonic ms of the recording's first session.
 */
export function recordingRates(q: Statements, offset: number | null, maxBuckets: number): EventRates[] {
  const counted = hasCounts(q);
  // Counted events (event_counts) stand at the middle of their monotonic second.
  const span = q.get(
    counted
      ? `SELECT min(lo) AS lo, max(hi) AS hi FROM (SELECT min(ts_ns) AS lo, max(ts_ns) AS hi FROM events
           UNION ALL SELECT min(sec) * 1000000000 + 500000000, max(sec) * 1000000000 + 500000000 FROM event_counts)`
      : 'SELECT min(ts_ns) AS lo, max(ts_ns) AS hi FROM events',
  ).get() as { lo: number | null; hi: number | null };
  if (span.lo === null || span.hi === null || offset === null) return [];
  const bucketNs = Math.max(1e9, Math.ceil((span.hi - span.lo) / maxBuckets / 1e9) * 1e9);
  const rows = q.get(
    counted
      ? `SELECT b, kind, sum(n) AS n FROM (
           SELECT CAST((ts_ns - ?) / ? AS INTEGER) AS b, kind, count(*) AS n FROM events GROUP BY b, kind
           UNION ALL SELECT CAST((sec * 1000000000 + 500000000 - ?) / ? AS INTEGER) AS b, kind, sum(n) AS n FROM event_counts GROUP BY b, kind)
         GROUP BY b, kind ORDER BY b`
      : 'SELECT CAST((ts_ns - ?) / ? AS INTEGER) AS b, kind, count(*) AS n FROM events GROUP BY b, kind ORDER BY b',
  ).all(...(counted ? [span.lo, bucketNs, span.lo, bucketNs] : [span.lo, bucketNs])) as { b: number; kind: EventKind; n: number }[];
  const buckets = new Map<number, EventRates>();
  for (const r of rows) {
    let bucket = buckets.get(r.b);
    if (!bucket) {
      bucket = { wallMs: Math.round(offset + (span.lo + (r.b + 1) * bucketNs) / 1e6), counts: {} };
      buckets.set(r.b, bucket);
    }
    // Per second, whatever the bucket width, so the chart's axis means the same in live and replay.
    bucket.counts[r.kind] = r.n / (bucketNs / 1e9);
  }
  // Empty seconds are real zeroes: fill them so the chart does not interpolate across gaps.
  const out: EventRates[] = [];
  const last = Math.max(...buckets.keys());
  for (let b = 0; b <= last; b++) {
    out.push(buckets.get(b) ?? { wallMs: Math.round(offset + (span.lo + (b + 1) * bucketNs) / 1e6), counts: {} });
  }
  return out;
}
