// Live test of the FaultWatcher (bpf/tracepoint/faults.bt template): an io_uring-pinned buffer with a zapped page
// faults when written; faults are reported only inside the 2 MiB regions given to setRegions; the process exists
// only while regions exist, and a region change restarts it.
// Needs root + bpftrace (skips otherwise; fails in CI). Run: node --import tsx --test test/live/bpf/*.test.ts
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { FaultWatcher } from '../../../collector/runner/index.ts';
import { buildFixture, gate, recordingSink, startFixture, waitFor } from './helpers.ts';

const { skip, ciFailure } = gate();
if (ciFailure) test('live bpf prerequisites', () => assert.fail(ciFailure));

let watcher: FaultWatcher | null = null;
after(async () => {
  await watcher?.stop();
});

test('faults inside a pinned region are reported, outside are not; restart on change; no process when empty', { skip }, async () => {
  const bin = buildFixture();
  const fx = startFixture(bin, ['fault']);
  const info = await fx.nextLine();
  const pid = info.pid as number;
  const a = info.a as number;
  const b = info.b as number;
  assert.equal(info.register, 0, 'io_uring registration of region a');
  assert.equal(info.dontneed, 0);
  const rec = recordingSink();
  const changes: { regions: number; ms: number; running: boolean }[] = [];
  watcher = new FaultWatcher({ sink: rec, onChange: (c) => changes.push(c) });
  assert.equal(watcher.running, false);

  watcher.setRegions([{ pid, region: Math.floor(a / 2 ** 21) }]);
  await watcher.settled();
  assert.equal(watcher.running, true, String(watcher.error));
  const firstStart = watcher.lastStartMs!;

  fx.send('go\n');
  assert.deepEqual(await fx.nextLine(), { done: true });
  const faults = () => rec.events.filter((e) => e.kind === 'fault' && e.pid === pid);
  await waitFor(() => faults().length >= 1, 5000, 'the fault in pinned region a');
  await new Promise((r) => setTimeout(r, 300));
  const got = faults().map((e) => (e.kind === 'fault' ? [e.addr, e.errorCode & 7] : []));
  // The zapped page of the pinned buffer faults (not present, write, user = 6); the pinned page that is still
  // mapped does not; nothing from region b.
  assert.deepEqual(got, [[a + 8192, 6]]);
  assert.ok(!rec.events.some((e) => e.kind === 'fault' && e.addr >= b && e.addr < b + 2 ** 21));
  assert.ok(faults().every((e) => e.comm === 'pw_fixture' && e.tid === pid));

  // A change restarts (new process ready before the old one stops).
  watcher.setRegions([{ pid, region: Math.floor(a / 2 ** 21) }, { pid, region: Math.floor(b / 2 ** 21) }]);
  await watcher.settled();
  assert.equal(watcher.running, true);
  assert.equal(watcher.restarts, 2);
  const restartMs = watcher.lastStartMs!;
  const oldStopMs = watcher.lastStopMs!;

  // Empty: the process goes away.
  watcher.setRegions([]);
  await watcher.settled();
  assert.equal(watcher.running, false);
  console.log(`# fault watcher: first start ${firstStart} ms, restart (new ready) ${restartMs} ms, old stopped in ${oldStopMs} ms, stop on empty ${watcher.lastStopMs} ms`);
  assert.deepEqual(changes.map((c) => [c.regions, c.running]), [[1, true], [2, true], [0, false]]);
  await fx.end();
});
