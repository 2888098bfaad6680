// Unit tests of the benchmark harness's own arithmetic: percentiles, overhead ratios, targets, and the
// fixture replay's timestamp rewriting (which the ingest figure depends on).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { judge, measured } from '../../../bench/harness/figures.ts';
import { lineTs, shiftedCycle, type Fixture } from '../../../bench/harness/fixture.ts';
import { renderTable } from '../../../bench/harness/report.ts';
import { median, overheadRatio, percentile } from '../../../bench/harness/stats.ts';
import { parseLine } from '../../../collector/parse/index.ts';
import type { TraceEvent } from '../../../schema/events.ts';

test('percentile interpolates between closest ranks', () => {
  assert.equal(percentile([5, 1, 3], 50), 3);
  assert.equal(median([1, 2, 3, 4]), 2.5);
  assert.equal(percentile([0, 10], 99), 9.9);
  assert.equal(percentile([7], 99), 7);
  assert.ok(Number.isNaN(percentile([], 50)));
});

test('overhead is the ratio of medians; the spread comes from the pairs', () => {
  const r = overheadRatio([110, 105, 120], [100, 100, 100]);
  assert.equal(r.ratio, 1.1);
  assert.equal(r.min, 1.05);
  assert.equal(r.max, 1.2);
});

test('targets are judged in the right direction', () => {
  assert.equal(judge({ value: 1.01, target: { op: '<=', value: 1.02 } }), true);
  assert.equal(judge({ value: 1.03, target: { op: '<=', value: 1.02 } }), false);
  assert.equal(judge({ value: 900_000, target: { op: '>=', value: 1_000_000 } }), false);
  assert.equal(judge({ value: 5, target: undefined }), null);
  assert.equal(measured('ingest.parse-model-rules', 2e6).met, true);
  assert.match(renderTable([measured('overhead.fault.no-pins', 1.5, { lo: 1.4, hi: 1.6, n: 2 })]), /\*\*MISSED\*\*/);
  assert.match(renderTable([measured('hypervisor.real.cpu-256', -3, { met: null, inconclusive: 'noise' })]), /\| inconclusive \|/);
});

test('fixture replay moves timestamps forward per cycle and keeps lines parseable', () => {
  const rec = (data: string) => '{"type": "printf", "data": "' + data + '"}';
  const lines = [
    rec('madvise\\t1000000\\t42\\t42\\t4096\\t4096\\t4\\t0\\tapp'),
    '{"type": "lost_events", "data": {"events": 3}}',
    rec('fault\\t3000000\\t42\\t43\\t8192\\t7\\t1234\\tapp'),
  ];
  const fx: Fixture = { path: 'mem', lines, firstTs: 1_000_000, lastTs: 3_000_000 };
  assert.equal(lineTs(lines[0]), 1_000_000);
  assert.equal(lineTs(lines[1]), null);
  const c0 = shiftedCycle(fx, 0, 5_000_000);
  const c1 = shiftedCycle(fx, 1, 5_000_000);
  assert.equal(c0[1], lines[1], 'non-printf records are kept as they are');
  const ts = [c0[0], c0[2], c1[0], c1[2]].map((l) => lineTs(l)!);
  assert.equal(ts[0], 5_000_000, 'rebased to the base');
  for (let i = 1; i < ts.length; i++) assert.ok(ts[i] > ts[i - 1], `timestamps increase across cycles (${ts})`);
  const got: TraceEvent[] = [];
  let malformed = 0;
  const sink = { event: (e: TraceEvent) => got.push(e), lost() {}, ready() {}, malformed: () => malformed++ };
  for (const l of c1) parseLine(l, sink);
  assert.equal(malformed, 0);
  assert.deepEqual(got.map((e) => [e.kind, e.pid, e.tsNs]), [['madvise', 42, ts[2]], ['fault', 42, ts[3]]]);
});
