// The collector side of reliability without a kernel: capture gaps in the pipeline (low confidence, re-read after
// the gap, "during a capture gap" evidence), discovered io_uring pins and VmPin/VmLck, the restart policy, fdinfo
// and status parsing, and the store's repairs (a version-1 file upgraded in place, a dead collector's session
// marked crashed with its pins ended, gaps and pinned memory stored and read back).
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import Database from 'better-sqlite3';
import { parseIoUringFdinfo, parseStatusPinned } from '../../../collector/discover/index.ts';
import { RestartPolicy } from '../../../collector/runner/supervisor.ts';
import { watchSeedScript } from '../../../collector/runner/program.ts';
import { Store } from '../../../collector/store/index.ts';
import type { CaptureGap } from '../../../schema/reliability.ts';
import { Harness, BUF, PAGE } from '../pipeline/harness.ts';
import { SESSION, anomaly, pin, tempDir } from '../store/helpers.ts';
import { pagesOfRuns } from '../../../schema/pin-runs.ts';

describe('capture gaps in the pipeline', () => {
  test('a divergence inside a gap is found by the re-read after it: confirmed, low confidence, evidence says so', () => {
    const h = new Harness().anonBuffer(100, BUF, 4, 0x1000);
    h.registerRing(100, 5, [[BUF, 4 * PAGE]]);
    h.tick(1000);
    const gap = h.c.gapOpened('main', 'bpftrace exited (SIGKILL)');
    // Unseen: MADV_DONTNEED + write while bpftrace was down.
    h.pagemap.map(100, BUF + PAGE, 0x9000, 1);
    h.time.set(h.time.nowNs() + 1_000_000);
    h.c.gapClosed(gap);
    const div = h.sink.of('pin-pte-divergence');
    assert.equal(div.length, 1);
    assert.equal(div[0].addr, BUF + PAGE);
    assert.equal(div[0].confirmed, true);
    assert.equal(div[0].lowConfidence, true);
    assert.match(div[0].summary, /changed during a capture gap/);
    assert.ok(div[0].evidence.some((e) => /during a capture gap: bpftrace was not capturing .*bpftrace exited \(SIGKILL\)/.test(e.note)));
    assert.ok(h.sink.reads.some((r) => r.reason === 'after a capture gap'));
    assert.ok(gap.endNs !== null && gap.endNs >= gap.startNs);
  });

  test('silent after a gap when nothing changed; anomalies of pins that lived through a gap are low confidence', () => {
    const h = new Harness().anonBuffer(100, BUF, 4, 0x1000);
    h.registerRing(100, 5, [[BUF, 4 * PAGE]]);
    const gap = h.c.gapOpened('faults', 'bpftrace exited (SIGKILL)');
    h.tick(10);
    h.c.gapClosed(gap);
    assert.deepEqual(h.sink.anomalies, []);
    h.tick(5000);
    h.feed(h.ev.fork(100, 101));
    h.c.verifyNow();
    const f = h.sink.of('fork-with-pins');
    assert.equal(f.length, 1);
    assert.equal(f[0].lowConfidence, true, 'the pin lived through the gap: a MADV_DONTFORK in it would not have been seen');
  });

  test('a process forking 20,000 times: one fork-with-pins anomaly with count 20,000, re-sent at most once a second', () => {
    const h = new Harness().anonBuffer(100, BUF, 4, 0x1000);
    h.registerRing(100, 5, [[BUF, 4 * PAGE]]);
    for (let i = 0; i < 20_000; i++) {
      h.feed(h.ev.fork(100, 1000 + i));
      if (i % 1000 === 999) h.tick(100);
    }
    h.c.verifyNow();
    const f = h.sink.of('fork-with-pins');
    assert.equal(new Set(f.map((a) => a.seq)).size, 1);
    assert.equal(f[f.length - 1].count, 20_000);
    assert.ok(f.length <= 4, `sent ${f.length} times over ~2 s of fake time (first, once a second, the final count)`);
    assert.equal(h.c.counters.anomalies, 1);
  });

  test('discovered io_uring buffers become pins (origin discovered, pfns from pagemap), VmPin is explained, a later zap is judged', () => {
    const h = new Harness().anonBuffer(200, BUF, 4, 0x5000);
    const pinned: unknown[] = [];
    (h.sink as unknown as { pinnedMemory(m: unknown): void }).pinnedMemory = (m) => pinned.push(m);
    const created = h.c.adoptDiscovery({
      rings: [{ pid: 200, comm: 'qemu', fd: 7, buffers: [{ slot: 0, addr: BUF, len: 4 * PAGE }] }],
      memory: [{ pid: 200, comm: 'qemu', vmPinPages: 4, vmLckPages: 0 }, { pid: 300, comm: 'rdma-app', vmPinPages: 256, vmLckPages: 0 }],
      processes: 2,
      ms: 1,
    });
    assert.equal(created, 1);
    const p = h.c.pins()[0];
    assert.equal(p.origin, 'discovered');
    assert.deepEqual([...pagesOfRuns(p.runs)].map((x) => x.pinnedPfn), [0x5000, 0x5001, 0x5002, 0x5003]);
    assert.match(p.handle, /ring fd 7 slot 0 \(discovered\)/);
    assert.deepEqual(pinned.map((m) => { const x = m as { pid: number; explainedPages: number; vmPinPages: number }; return [x.pid, x.vmPinPages, x.explainedPages]; }), [[200, 4, 4], [300, 256, 0]]);
    // The same discovery again (after a restart) adds nothing.
    assert.equal(h.c.adoptDiscovery({ rings: [{ pid: 200, comm: 'qemu', fd: 7, buffers: [{ slot: 0, addr: BUF, len: 4 * PAGE }] }], memory: [], processes: 1, ms: 1 }), 0);
    assert.deepEqual(h.c.watchSeed([300]), { pids: [200, 300], fds: [[200, 7]], backingSpans: [], forkAdviceSpans: [] });
    h.feed(h.ev.madvise(200, BUF + PAGE, PAGE, 4));
    h.pagemap.map(200, BUF + PAGE, 0x9999, 1);
    h.tick(50);
    const div = h.sink.of('pin-pte-divergence');
    assert.equal(div.length, 1);
    assert.equal(div[0].confirmed, true);
    assert.match(div[0].evidence[0].note, /found already pinned at start.*pinned pfns read from pagemap at discovery/);
  });
});

describe('restart policy', () => {
  test('first retry within 250 ms, doubling to 4 s; gives up at the 5th failure within 60 s; old failures age out', () => {
    let now = 0;
    const p = new RestartPolicy({ now: () => now });
    assert.deepEqual([p.failed(), p.failed(), p.failed(), p.failed()], [250, 500, 1000, 2000]);
    assert.equal(p.failed(), null);
    assert.equal(p.describe(), '5 failures within 60 s');
    const q = new RestartPolicy({ now: () => now });
    for (let i = 0; i < 10; i++) {
      assert.equal(q.failed(), 250, 'one failure a minute never gives up');
      now += 61_000;
    }
  });
});

describe('discovery parsing', () => {
  test('io_uring fdinfo on 6.18 (addr/len) and older kernels (addr, len); sparse slots skipped; other fds are not rings', () => {
    const t618 = 'pos:\t0\nUserFiles:\t0\nUserBufs:\t3\n    0: 0x7fc5fa5a6000/8192\n    1: 0x0/0\n    2: 0x7fc5fa5a8000/4096\nPollList:\n';
    assert.deepEqual(parseIoUringFdinfo(t618), [{ slot: 0, addr: 0x7fc5fa5a6000, len: 8192 }, { slot: 2, addr: 0x7fc5fa5a8000, len: 4096 }]);
    assert.deepEqual(parseIoUringFdinfo('UserBufs:\t1\n  0: 0x7f0000001000, 16384\n'), [{ slot: 0, addr: 0x7f0000001000, len: 16384 }]);
    assert.equal(parseIoUringFdinfo('pos:\t0\nflags:\t02\n'), null);
  });
  test('VmPin / VmLck in pages', () => {
    assert.deepEqual(parseStatusPinned('Name:\tqemu-kvm\nVmLck:\t  1048576 kB\nVmPin:\t      12 kB\n'), { comm: 'qemu-kvm', vmPinPages: 3, vmLckPages: 262144 });
  });
  test('after a restart the seed gives back the spans of what the model keeps for processes that pin nothing yet', () => {
    const h = new Harness();
    const SHM = 0x7f5000000000;
    // pid 400 maps a shmem file MAP_SHARED (captured backing) twice; pid 401 (libuv-like) DONTFORKs two ranges
    h.feed(
      { kind: 'mmap_backing', tsNs: h.time.nowNs(), pid: 400, tid: 400, comm: 'shm-user', addr: SHM, len: 2 * PAGE, flags: 1, magic: 0x01021994, name: 'memfd:ring' },
      { kind: 'mmap_backing', tsNs: h.time.nowNs(), pid: 400, tid: 400, comm: 'shm-user', addr: SHM + 16 * PAGE, len: PAGE, flags: 1, magic: 0x01021994, name: 'memfd:ring' },
      h.ev.madvise(401, 0x7f6000000000, 4 * PAGE, 10),
      h.ev.madvise(401, 0x7f6000100000, PAGE, 18),
    );
    const seed = h.c.watchSeed();
    assert.deepEqual(seed.pids, []);
    assert.deepEqual(seed.backingSpans, [[400, SHM, SHM + 17 * PAGE]]);
    assert.deepEqual(seed.forkAdviceSpans, [[401, 0x7f6000000000, 0x7f6000100000 + PAGE, 2]]);
    const maps = [{ name: 'tracepoint/all', file: '', mode: 'tracepoint' as const, probes: [], text: '@pw_watch[pid] @pw_watchfd[pid, fd] @pw_bspan[pid] @pw_fspan[pid]' }];
    const text = watchSeedScript({ ...seed, pids: [401] }, maps).text!;
    assert.match(text, new RegExp(`@pw_bspan\\[400\\] = \\(\\(uint64\\)${SHM}, \\(uint64\\)${SHM + 17 * PAGE}\\);\n  @pw_mmb\\[400\\] = 1;`));
    assert.match(text, /@pw_fspan\[401\] = \(\(uint64\)\d+, \(uint64\)\d+\);\n  @pw_fkn\[401\] = 2;/);
    // 401 pins now: it stays @pw_watch = 2, not lowered to the fork-advice level 1
    assert.doesNotMatch(text, /@pw_watch\[401\] = 1/);
    assert.match(watchSeedScript({ ...seed, pids: [] }, maps).text!, /@pw_watch\[401\] = 1;/);
  });
  test('the watch seed writes only maps the program uses, valid numbers only', () => {
    const uses = [{ name: 'tracepoint/fork', file: '', mode: 'tracepoint' as const, probes: [], text: '@pw_watch[pid] = 2; @pw_watchfd[pid, 1] = 1;' }];
    assert.equal(watchSeedScript({ pids: [42, -1], fds: [[42, 7]] }, uses).text, 'BEGIN\n{\n  @pw_watch[42] = 2;\n  @pw_watchfd[42, 7] = 1;\n}\n');
    assert.equal(watchSeedScript({ pids: [42], fds: [[42, 7]] }, [{ ...uses[0], text: '' }]).text, 'BEGIN\n{\n\n}\n');
  });
});

describe('store repairs', () => {
  test('a dead collector\'s open session: marked crashed at its last event at the next start; its pins end there', (t) => {
    const file = join(tempDir(t), 'crash.db');
    const s = Store.open(file);
    s.startSession(SESSION);
    s.event({ kind: 'exit', seq: 1, tsNs: 5_000_000_000, pid: 1, tid: 1, comm: 'a' });
    s.pin(pin(1));
    s.anomaly(anomaly(1));
    s.flush();
    // kill -9: no endSession, no close; the writer row names a pid that is gone.
    const raw = new Database(file);
    raw.prepare(`UPDATE meta SET value = ? WHERE key = 'writer'`).run(JSON.stringify({ pid: 2 ** 22 + 1, host: 'x', sinceMs: 0 }));
    raw.close();
    const replay = Store.open(file, { readonly: true });
    assert.equal(replay.sessions()[0].endReason, 'crashed', 'a reader already sees it crashed');
    assert.equal(replay.pins()[0].releasedNs, 5_000_000_000);
    replay.close();
    const next = Store.open(file);
    t.after(() => next.close());
    assert.deepEqual(next.recoveredSessions, [1]);
    const sess = next.sessions()[0];
    assert.equal(sess.endReason, 'crashed');
    assert.equal(sess.lastEventNs, 5_000_000_000);
    assert.match(sess.endDetail!, /last event at/);
    assert.equal(next.pins()[0].state, 'released');
    assert.equal(next.pins()[0].releasedNs, 5_000_000_000);
  });

  test('a version-1 file is upgraded in place (additive) and keeps its rows; gaps and pinned memory round-trip', (t) => {
    const file = join(tempDir(t), 'v1.db');
    const s = Store.open(file);
    s.startSession(SESSION);
    s.anomaly(anomaly(1));
    s.endSession();
    s.close();
    const raw = new Database(file);
    raw.exec(`DROP TABLE capture_gaps; DROP TABLE pinned_memory; ALTER TABLE anomalies DROP COLUMN count; ALTER TABLE anomalies DROP COLUMN last_ts_ns;
      ALTER TABLE sessions DROP COLUMN end_reason; ALTER TABLE sessions DROP COLUMN end_detail; ALTER TABLE sessions DROP COLUMN last_event_ns;
      ALTER TABLE pins DROP COLUMN origin; UPDATE meta SET value = '1' WHERE key = 'schema_version'`);
    raw.close();
    const r = Store.open(file, { readonly: true });
    assert.equal(r.anomalies().length, 1, 'a reader opens version 1 as it is');
    assert.deepEqual(r.gaps(), []);
    r.close();
    const w = Store.open(file);
    t.after(() => w.close());
    w.startSession(SESSION);
    const g: CaptureGap = { id: 0, process: 'main', cause: 'bpftrace exited (SIGKILL)', startNs: 1, endNs: null, startWallMs: 1, endWallMs: null, eventsLost: null };
    w.gap(g);
    w.flush();
    g.endNs = 5;
    w.gap(g);
    w.pinnedMemory({ tsNs: 2, pid: 9, comm: 'x', vmPinPages: 10, vmLckPages: 1, explainedPages: 4 });
    w.anomaly({ ...anomaly(2), count: 7, lastTsNs: 99 });
    w.flush();
    assert.equal(w.anomalies().length, 2);
    assert.deepEqual(w.anomaly(2)?.count, 7);
    assert.deepEqual(w.gaps().map((x) => [x.process, x.startNs, x.endNs]), [['main', 1, 5]]);
    assert.deepEqual(w.pinnedMemory().map((m) => [m.pid, m.vmPinPages, m.explainedPages]), [[9, 10, 4]]);
  });
});
