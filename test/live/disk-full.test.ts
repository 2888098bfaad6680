// Disk full, for real: the store on a 4 MiB tmpfs (root: mount). While writes fail the queue stays bounded
// (further events dropped and counted), anomalies are kept; once space returns the backlog is written in small
// batches, anomalies first, and the file passes integrity_check.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, statfsSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import Database from 'better-sqlite3';
import type { SequencedEvent } from '../../schema/events.ts';
import { Store, type StoreError } from '../../collector/store/index.ts';
import { waitFor } from '../support/held-pin.ts';
import { rootGate } from './scenarios/root-gate.ts';
import { SESSION, anomaly } from '../unit/store/helpers.ts';

test('disk full: bounded queue, dropped events counted, anomalies kept, writes resume in small batches when space returns', rootGate(), async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'pinwatch-diskfull-'));
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=4m', 'tmpfs', dir]);
  t.after(() => {
    execFileSync('umount', ['-l', dir]);
    rmSync(dir, { recursive: true, force: true });
  });
  const errors: StoreError[] = [];
  let recovered = 0;
  const store = Store.open(join(dir, 'full.db'), {
    maxQueuedRows: 20_000,
    recoveryBatchRows: 500,
    onError: (e) => errors.push(e as StoreError),
    onRecovered: () => recovered++,
  });
  store.startSession(SESSION);
  // Leave ~64 KiB free.
  const free = () => {
    const s = statfsSync(dir);
    return s.bavail * s.bsize;
  };
  writeFileSync(join(dir, 'filler'), Buffer.alloc(Math.max(0, free() - 64 * 1024)));
  let seq = 0;
  const ev = (): SequencedEvent => ({ kind: 'madvise', seq: ++seq, tsNs: 1e9 + seq, pid: 100, tid: 100, comm: 'app', addr: 0x7f0000000000 + seq * 4096, len: 4096, behavior: 4, ret: 0 });
  for (let i = 0; i < 60_000; i++) {
    store.event(ev());
    if (i % 1000 === 0) await new Promise((r) => setImmediate(r));
  }
  store.anomaly(anomaly(1));
  store.anomaly(anomaly(2));
  await waitFor(() => errors.length > 0, 10_000, 'a failed write');
  assert.equal(errors[0].code, 'disk-full');
  assert.match(errors[0].fix, /free disk space/);
  const st = store.stats();
  assert.ok(st.queued <= 20_000 + 10, `queue bounded: ${st.queued}`);
  assert.ok(st.dropped > 0, 'events beyond the bound are dropped and counted');
  // Space comes back: the backlog drains in small transactions, anomalies first.
  rmSync(join(dir, 'filler'));
  await waitFor(() => recovered > 0 && store.stats().queued === 0, 30_000, `the backlog to be written (${JSON.stringify(store.stats())})`);
  store.endSession();
  store.close();
  const d = new Database(join(dir, 'full.db'), { readonly: true });
  try {
    assert.deepEqual(d.pragma('integrity_check'), [{ integrity_check: 'ok' }]);
    assert.equal((d.prepare('SELECT count(*) AS n FROM anomalies').get() as { n: number }).n, 2);
    const n = (d.prepare('SELECT count(*) AS n FROM events').get() as { n: number }).n;
    assert.equal(n + st.dropped, 60_000, 'every event is written or counted as dropped');
    const s = d.prepare('SELECT end_reason, end_detail FROM sessions').get() as { end_reason: string; end_detail: string };
    assert.equal(s.end_reason, 'clean');
    assert.match(s.end_detail, /dropped while the database could not be written/);
    process.stderr.write(`# disk full: ${n} events written, ${st.dropped} dropped, queue peak <= ${st.queued}\n`);
  } finally {
    d.close();
  }
});
