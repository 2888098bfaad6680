// The Collector: numbering, what reaches the sinks, lost events and low confidence, the fault-region
// callback, verifyNow/close, error isolation, and the bundled scenarios replayed as event streams (the
// same expectations the live test checks on the real kernel).
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { CollectorSink } from '../../../collector/contracts.ts';
import { Collector } from '../../../collector/pipeline.ts';
import { ALL_RULES } from '../../../collector/rules/index.ts';
import { defineRule } from '../../../collector/rules/rule.ts';
import { FakeMapsReader, FakePagemapReader, FakeTime } from '../../support/fakes.ts';
import { RULE_IDS } from '../../../schema/anomalies.ts';
import { MADV, MREMAP_FIXED, MREMAP_MAYMOVE, SCAN_EXCEED_NONE_PTE, SCAN_SUCCEEDED } from '../../../schema/kernel.ts';
import { BUF, Harness, MiB2, PAGE, RecordingSink } from './harness.ts';
import { pageAt, pagesOfRuns, pinPageIndex } from '../../../schema/pin-runs.ts';

const hex = (n: number) => '0x' + n.toString(16);

describe('Collector basics', () => {
  test('events, anomalies and pins are numbered from the given starting values, monotonically', () => {
    const h = new Harness({ firstEventSeq: 1000, firstAnomalySeq: 50, firstPinId: 7 }).anonBuffer(100, BUF, 2, 0x1000);
    h.registerRing(100, 5, [[BUF, 2 * PAGE]]);
    h.feed(h.ev.madvise(100, BUF, PAGE, MADV.DONTNEED), h.ev.madvise(100, BUF + PAGE, PAGE, MADV.DONTNEED));
    h.pastTeardown();
    assert.deepEqual(h.sink.events.map((e) => e.seq), [1000, 1001, 1002, 1003]);
    assert.deepEqual(h.sink.anomalies.map((a) => a.seq), [50, 51]);
    assert.equal(h.sink.pinUpdates[0].id, 7);
    assert.equal(h.c.nextEventSeq, 1004);
    assert.equal(h.c.nextAnomalySeq, 52);
    assert.equal(h.c.nextPinId, 8);
    assert.equal(h.sink.anomalies[0].pinId, 7);
  });

  test('sinks get every event, pin creation/changes/release, pagemap reads with reasons', () => {
    const h = new Harness().anonBuffer(100, BUF, 2, 0x1000);
    h.feed(h.ev.madvise(42, 0x1000, PAGE, MADV.DONTNEED)); // unrelated process
    h.registerRing(100, 5, [[BUF, 2 * PAGE]]);
    assert.equal(h.sink.pinUpdates.length, 1);
    assert.equal(h.sink.pinUpdates[0].state, 'intact');
    assert.deepEqual([...pagesOfRuns(h.sink.pinUpdates[0].runs)].map((p) => p.pinnedPfn), [0x1000, 0x1001]);
    h.pagemap.map(100, BUF, 0x2222);
    h.feed(h.ev.fault(100, BUF, true, true));
    h.tick(20);
    assert.ok(h.sink.reads.some((r) => r.reason === 'fault' && r.read.addr === BUF && r.read.pfn === 0x2222));
    const last = h.sink.pinUpdates[h.sink.pinUpdates.length - 1];
    assert.equal(last.state, 'diverged');
    assert.equal(pageAt(last.runs, 0)?.currentPfn, 0x2222);
    h.feed(h.ev.pinResult(100, 5, 0, 0, { opcode: 1 }));
    const rel = h.sink.pinUpdates[h.sink.pinUpdates.length - 1];
    assert.equal(rel.state, 'released');
    assert.equal(rel.releasedNs, h.time.nowNs());
    assert.equal(h.sink.events.length, 5);
    assert.deepEqual(h.c.pins(), []);
  });

  test('parseSink: events go through ingest; lost() puts a lost event in the stream and marks nearby anomalies', () => {
    const h = new Harness({ config: { lostWindowNs: 1_000_000_000 } }).anonBuffer(100, BUF, 4, 0x1000);
    h.registerRing(100, 5, [[BUF, 4 * PAGE]]);
    h.c.parseSink.lost(17);
    const lostEv = h.sink.events[h.sink.events.length - 1];
    assert.equal(lostEv.kind, 'lost');
    assert.deepEqual(h.sink.lostCounts, [17]);
    assert.equal(h.c.counters.lostEvents, 17);
    h.time.set(h.time.nowNs() + 500_000_000);
    h.c.parseSink.event(h.ev.madvise(100, BUF, PAGE, MADV.DONTNEED));
    h.time.set(h.time.nowNs() + 2_000_000_000);
    h.c.parseSink.event(h.ev.madvise(100, BUF + PAGE, PAGE, MADV.DONTNEED));
    h.pastTeardown();
    const z = h.sink.of('pinned-range-zapped');
    assert.deepEqual(z.map((a) => a.lowConfidence), [true, false]);
    h.c.parseSink.malformed('garbage', 'not json');
    h.c.parseSink.ready('tracepoint/madvise');
    assert.equal(h.c.counters.malformed, 1);
  });

  test('fault regions (all-pins): announced when pins appear, move or go; not repeated when unchanged', () => {
    const h = new Harness({ config: { faultWatch: 'all-pins' } }).anonBuffer(100, BUF, 4, 0x1000);
    const DST = BUF + 16 * MiB2;
    h.registerRing(100, 5, [[BUF, 4 * PAGE]]);
    const r = Math.floor(BUF / MiB2);
    assert.deepEqual(h.regions, [[{ pid: 100, region: r }]]);
    h.registerRing(100, 6, [[BUF + PAGE, PAGE]]);
    assert.equal(h.regions.length, 1, 'same region: no callback');
    h.feed(h.ev.mremap(100, BUF, 4 * PAGE, 4 * PAGE, MREMAP_MAYMOVE | MREMAP_FIXED, DST, DST));
    assert.deepEqual(h.regions[h.regions.length - 1], [{ pid: 100, region: Math.floor(DST / MiB2) }]);
    h.feed(h.ev.exit(100));
    assert.deepEqual(h.regions[h.regions.length - 1], []);
  });

  test('fault regions (armed, the default): none while pins are intact; the zapped page\'s region after a hard zap, until the pin goes', () => {
    const h = new Harness().anonBuffer(100, BUF, 4, 0x1000);
    h.registerRing(100, 5, [[BUF, 4 * PAGE]]);
    assert.deepEqual(h.regions, [], 'an intact pin: no fault probe at all');
    h.feed(h.ev.madvise(100, BUF + PAGE, PAGE, MADV.DONTNEED));
    assert.deepEqual(h.regions, [[{ pid: 100, region: Math.floor(BUF / MiB2) }]]);
    h.feed(h.ev.exit(100));
    assert.deepEqual(h.regions[h.regions.length - 1], []);
  });

  test('a lost exit: the periodic pass finds the process gone and releases its pins', () => {
    const h = new Harness({ config: { verifyIntervalMs: 500 } }).anonBuffer(100, BUF, 1, 0x1000);
    h.registerRing(100, 5, [[BUF, PAGE]]);
    h.pagemap.kill(100);
    h.tick(500);
    assert.equal(h.c.pins().length, 0);
    assert.equal(h.sink.pinUpdates[h.sink.pinUpdates.length - 1].state, 'released');
    assert.deepEqual(h.regions.at(-1) ?? [], [], 'no fault regions left (none were armed)');
    assert.deepEqual(h.sink.anomalies, []);
  });

  test('verifyNow runs pending reads at once; close() does a last pass and stops every timer', () => {
    const h = new Harness().anonBuffer(100, BUF, 2, 0x1000);
    h.registerRing(100, 5, [[BUF, 2 * PAGE]]);
    h.feed(h.ev.madvise(100, BUF, PAGE, MADV.DONTNEED));
    h.pagemap.map(100, BUF, 0x3333);
    h.feed(h.ev.fault(100, BUF, true));
    assert.equal(h.sink.of('pin-pte-divergence').length, 0);
    h.c.verifyNow();
    assert.equal(h.sink.of('pin-pte-divergence').length, 1);
    h.pagemap.map(100, BUF + PAGE, 0x4444);
    h.c.close();
    assert.equal(h.sink.of('pin-pte-divergence').length, 2, 'the last pass saw page 1 too');
    assert.equal(h.time.pendingTimers, 0);
    assert.doesNotThrow(() => h.c.close());
  });

  test('a throwing sink is isolated and counted; a throwing rule is skipped and counted', () => {
    const time = new FakeTime();
    const good = new RecordingSink();
    const bad: CollectorSink = {
      event: () => {
        throw new Error('disk full');
      },
      pin: () => {
        throw new Error('disk full');
      },
      pagemapRead: () => {},
      anomaly: () => {},
      lost: () => {},
    };
    const errors: unknown[] = [];
    const ruleErrors: string[] = [];
    const broken = defineRule({
      info: { ...ALL_RULES[0].info },
      kinds: ['madvise'],
      onEvent: () => {
        throw new Error('bug');
      },
    });
    const c = new Collector({
      sinks: [bad, good], clock: time, scheduler: time, pagemap: new FakePagemapReader(time), maps: new FakeMapsReader(),
      rules: [broken, ...ALL_RULES], onSinkError: (e) => errors.push(e), onRuleError: (id) => ruleErrors.push(id),
    });
    c.ingest({ kind: 'madvise', tsNs: 1, pid: 1, tid: 1, comm: 'x', addr: 0x1000, len: PAGE, behavior: MADV.COLLAPSE, ret: 0 });
    assert.equal(good.events.length, 1);
    assert.equal(errors.length, 1);
    assert.equal(c.counters.sinkErrors, 1);
    assert.deepEqual(ruleErrors, ['pin-pte-divergence']);
    assert.equal(c.engine.errors, 1);
  });

  test('ALL_RULES covers every rule id once, in schema order, with complete user-facing text', () => {
    assert.deepEqual(ALL_RULES.map((r) => r.info.id), [...RULE_IDS]);
    for (const r of ALL_RULES) {
      assert.ok(r.info.title.length > 10 && r.info.whyItMatters.length > 80 && r.info.mechanism.length > 80, r.info.id);
      assert.ok(r.info.seeds.length > 0 && r.info.modes.length > 0, r.info.id);
      assert.ok(/[a-z_]+\(|[a-z]+_[a-z_]+/.test(r.info.mechanism), `${r.info.id}: mechanism names kernel functions`);
    }
  });
});

describe('the bundled scenarios, replayed', () => {
  // Each is the event stream the scenario's C program produces (as the bpftrace scripts report it),
  // with the kernel's page-table changes applied to the fake pagemap at the moments they happen.
  const HOLD_BEFORE = 300;
  const HOLD_AFTER = 1500;

  function uringScenario(setup: (h: Harness) => void) {
    const h = new Harness().anonBuffer(100, BUF, 4, 0x125bc0);
    h.registerRing(100, 5, [[BUF, 4 * PAGE]]);
    h.tick(HOLD_BEFORE);
    setup(h);
    h.tick(HOLD_AFTER);
    h.feed(h.ev.pinResult(100, 5, 0, 0, { opcode: 1 }));
    h.feed(h.ev.exit(100));
    h.c.close();
    return h;
  }

  test('uring-clean: silent', () => {
    const h = uringScenario(() => {});
    assert.deepEqual(h.sink.summary(), []);
  });

  test('uring-dontneed: pinned-range-zapped + pin-pte-divergence (confirmed) at the zapped page', () => {
    const zap = BUF + PAGE;
    const h = uringScenario((h) => {
      h.pagemap.unmap(100, zap);
      h.feed(h.ev.madvise(100, zap, PAGE, MADV.DONTNEED));
      h.pagemap.map(100, zap, 0x11fca8);
      h.feed(h.ev.fault(100, zap, true));
    });
    assert.deepEqual(h.sink.summary(100), [`pin-pte-divergence @${hex(zap)} confirmed`, `pinned-range-zapped @${hex(zap)} confirmed`]);
    const pinRow = h.sink.pinUpdates.find((p) => pageAt(p.runs, pinPageIndex(p.addr, zap)) !== undefined)!;
    assert.equal(pageAt(pinRow.runs, pinPageIndex(pinRow.addr, zap))?.pinnedPfn, 0x125bc1, 'the pins table holds the pfn the reproducer read');
  });

  test('uring-munmap: pinned-range-zapped + pin-leak at the unmapped page', () => {
    const gone = BUF + PAGE;
    const h = uringScenario((h) => {
      h.pagemap.unmap(100, gone);
      h.feed(h.ev.munmap(100, gone, PAGE));
    });
    assert.deepEqual(h.sink.summary(100), [`pin-leak @${hex(gone)}`, `pinned-range-zapped @${hex(gone)} confirmed`]);
  });

  test('uring-mremap: silent (the pinned pages follow the move; nothing diverges at the old address or the new)', () => {
    const DST = BUF + 0x40_0000;
    const h = uringScenario((h) => {
      h.pagemap.unmap(100, BUF, 4).map(100, DST, 0x125bc0, 4);
      h.feed(h.ev.mremap(100, BUF, 4 * PAGE, 4 * PAGE, MREMAP_MAYMOVE | MREMAP_FIXED, DST, DST));
      h.feed(h.ev.fault(100, DST, true, true));
    });
    assert.deepEqual(h.sink.summary(100), []);
  });

  test('collapse-pinned-anon: collapse-blocked-by-pin (info) at the pinned page the scan refused', () => {
    const RANGE = BUF - (BUF % MiB2) + MiB2;
    const pinned = RANGE + 16 * PAGE;
    const h = new Harness().anonBuffer(100, RANGE, 512, 0x40000);
    h.registerRing(100, 5, [[pinned, 4 * PAGE]]);
    h.tick(HOLD_BEFORE);
    h.feed(h.ev.scanPmd(100, 0x40000 + 16, 14), h.ev.madvise(100, RANGE, MiB2, MADV.COLLAPSE, -11));
    h.tick(HOLD_AFTER);
    h.feed(h.ev.pinResult(100, 5, 0, 0, { opcode: 1 }));
    h.feed(h.ev.scanPmd(100, 0x40000, 1), h.ev.madvise(100, RANGE, MiB2, MADV.COLLAPSE, 0));
    h.pagemap.map(100, RANGE, 0x80000, 512); // collapsed into a THP: every pfn changed, no pin left
    h.tick(HOLD_AFTER);
    h.feed(h.ev.exit(100));
    h.c.close();
    assert.deepEqual(h.sink.summary(100), [`collapse-blocked-by-pin @${hex(pinned)}`]);
    assert.equal(h.sink.anomalies[0].severity, 'info');
  });

  test('vmsplice-pageout (no swap: the page is not unmapped): nothing for the process', () => {
    const h = new Harness().anonBuffer(100, BUF, 1, 0x1000);
    h.feed(h.ev.iovec(100, 4, 0, BUF, PAGE, { source: 'vmsplice' }), h.ev.pinResult(100, 4, 1, PAGE, { source: 'vmsplice' }));
    h.feed(h.ev.madvise(100, BUF, PAGE, MADV.PAGEOUT));
    h.tick(HOLD_AFTER);
    h.feed(h.ev.close(100, 4), h.ev.exit(100));
    h.c.close();
    assert.deepEqual(h.sink.summary(100), []);
  });

  test('uring-fork: fork-with-pins at the buffer, nothing else (the parent keeps its pages)', () => {
    const h = uringScenario((h) => {
      h.feed(h.ev.fork(100, 101));
      h.feed(h.ev.exit(101));
      h.feed(h.ev.fault(100, BUF + 2 * PAGE, true, true)); // the parent writes page 2: reused on >= 5.9
    });
    assert.deepEqual(h.sink.summary(100), [`fork-with-pins @${hex(BUF)}`]);
    assert.deepEqual(h.sink.summary(101), []);
  });

  test('uring-fork-dontfork: silent', () => {
    const h = new Harness().anonBuffer(100, BUF, 4, 0x1000);
    h.feed(h.ev.madvise(100, BUF, 4 * PAGE, MADV.DONTFORK));
    h.registerRing(100, 5, [[BUF, 4 * PAGE]]);
    h.tick(HOLD_BEFORE);
    h.feed(h.ev.fork(100, 101), h.ev.exit(101));
    h.tick(HOLD_AFTER);
    h.feed(h.ev.pinResult(100, 5, 0, 0, { opcode: 1 }), h.ev.exit(100));
    h.c.close();
    assert.deepEqual(h.sink.summary(), []);
  });

  test('uring-memfd: silent (shmem is not the file-backed hazard)', () => {
    const h = new Harness();
    h.maps.add(100, BUF, BUF + 4 * PAGE, '/memfd:pinwatch-uring-memfd (deleted)', true);
    h.pagemap.map(100, BUF, 0x1000, 4);
    h.registerRing(100, 5, [[BUF, 4 * PAGE]]);
    h.tick(HOLD_AFTER);
    h.feed(h.ev.pinResult(100, 5, 0, 0, { opcode: 1 }), h.ev.exit(100));
    h.c.close();
    assert.deepEqual(h.sink.summary(), []);
  });

  test('uring-file-shared: longterm-pin-file-backed (info) at the buffer', () => {
    const h = new Harness();
    h.maps.add(100, BUF, BUF + 4 * PAGE, '/var/tmp/pinwatch-uring-file-shared.x1Y2z3 (deleted)', true);
    h.pagemap.map(100, BUF, 0x1000, 4);
    h.registerRing(100, 5, [[BUF, 4 * PAGE]], -14);
    h.tick(HOLD_AFTER);
    h.feed(h.ev.exit(100));
    h.c.close();
    assert.deepEqual(h.sink.summary(100), [`longterm-pin-file-backed @${hex(BUF)}`]);
    assert.equal(h.sink.anomalies[0].severity, 'info');
  });

  test('shmem-uffd-collapse: collapse-uffd-hole (info) at the range; the collapse after unregister is silent', () => {
    const h = new Harness();
    const range = BUF - (BUF % MiB2) + MiB2;
    h.feed(h.ev.uffd(300, 'register', 4, range, MiB2, 1));
    h.tick(HOLD_BEFORE);
    h.feed(h.ev.collapseFile(300, range, SCAN_EXCEED_NONE_PTE), h.ev.madvise(300, range, MiB2, MADV.COLLAPSE, -16));
    h.feed(h.ev.fault(300, range, false));
    h.tick(HOLD_AFTER);
    h.feed(h.ev.uffd(300, 'unregister', 4, range, MiB2, 0));
    h.feed(h.ev.collapseFile(300, range, SCAN_SUCCEEDED), h.ev.madvise(300, range, MiB2, MADV.COLLAPSE, 0));
    h.tick(HOLD_AFTER);
    h.feed(h.ev.exit(300));
    h.c.close();
    assert.deepEqual(h.sink.summary(300), [`collapse-uffd-hole @${hex(range)}`]);
    assert.equal(h.sink.anomalies[0].severity, 'info');
  });
});

describe('robustness', () => {
  test('random and malformed events of every kind: no rule throws, no exception escapes', () => {
    const h = new Harness({ config: { pinMaxAgeS: 1 } }).anonBuffer(100, BUF, 64, 0x1000);
    h.registerRing(100, 5, [[BUF, 32 * PAGE], [BUF + 32 * PAGE, 32 * PAGE]]);
    let x = 7;
    const rnd = (n: number) => ((x = (Math.imul(x, 1103515245) + 12345) >>> 0), x % n);
    const odd = [0, -1, NaN, 2 ** 53, BUF, BUF + 5 * PAGE + 3, -14, 2 ** 31, 0.5];
    const pick = () => (rnd(3) === 0 ? odd[rnd(odd.length)] : BUF + rnd(80) * PAGE);
    const pids = [100, 101, 0, -1, 100];
    const ev = h.ev;
    const makers = [
      () => ev.madvise(pids[rnd(5)], pick(), pick(), rnd(30), rnd(3) ? 0 : -22),
      () => ev.munmap(pids[rnd(5)], pick(), pick(), rnd(3) ? 0 : -22),
      () => ev.mremap(pids[rnd(5)], pick(), pick(), pick(), rnd(8), pick(), pick()),
      () => ev.mmapFixed(pids[rnd(5)], pick(), pick(), pick()),
      () => ev.fault(pids[rnd(5)], pick(), rnd(2) === 0, rnd(2) === 0),
      () => ev.fork(pids[rnd(5)], 200 + rnd(5), rnd(2) ? 0x11 : -1),
      () => ev.exit(200 + rnd(5)),
      () => ev.close(pids[rnd(5)], rnd(8)),
      () => ev.uffd(pids[rnd(5)], rnd(2) ? 'register' : 'unregister', rnd(8), pick(), pick(), rnd(8)),
      () => ev.iovec(pids[rnd(5)], rnd(8), rnd(4), pick(), pick(), { opcode: [0, 1, 15, 16, 30][rnd(5)] }),
      () => ev.pinResult(pids[rnd(5)], rnd(8), rnd(4), rnd(3) ? 0 : -14, { opcode: [0, 1, 15, 16, 30][rnd(5)] }),
      () => ev.collapseFile(pids[rnd(5)], pick(), rnd(20), { mm: rnd(2) ? '0xffff888000000064' : '' }),
      () => ev.scanPmd(pids[rnd(5)], 0x1000 + rnd(80), rnd(20)),
      () => ev.collapseIsolate(pids[rnd(5)], 0x1000 + rnd(80), rnd(20)),
      () => ev.ksm(1, 0x1000 + rnd(80), rnd(2) ? 0 : -14, '0xffff888000000064'),
      () => ev.writeback(1, 0x1000 + rnd(80)),
      () => ev.migrate(pids[rnd(5)], pick(), rnd(2) ? 'set' : 'remove'),
      () => ev.wpPage(pids[rnd(5)], pick(), 0x1000 + rnd(80), rnd(1000), (['copy', 'reuse', 'unshare'] as const)[rnd(3)]),
      () => ev.rmap(rnd(2) ? 'unmap' : 'mkclean', 1, 0x1000 + rnd(80), '0xffff888000000064', pick()),
      () => ev.mmuInvalidate(1, '0xffff888000000064', pick(), pick(), rnd(8)),
      () => ev.vfio(pids[rnd(5)], rnd(2) ? 'map' : 'unmap', rnd(8), pick(), pick(), pick(), rnd(8), rnd(3) ? 0 : -22),
      () => ev.gup(pids[rnd(5)], pick(), [0x1000 + rnd(80), NaN], rnd(0x200000)),
      () => ev.unpin(1, 0x1000 + rnd(80)),
      () => ev.lost(rnd(5)),
    ];
    for (let i = 0; i < 20_000; i++) {
      const e = makers[rnd(makers.length)]();
      h.feed(e);
      if (i % 500 === 0) h.tick(rnd(600));
    }
    h.c.close();
    assert.equal(h.c.engine.errors, 0);
    assert.equal(h.c.counters.events, h.sink.events.length);
    for (const a of h.sink.anomalies) {
      assert.ok(Number.isFinite(a.addr) && a.addr % PAGE === 0, `${a.rule} addr ${a.addr}`);
      assert.ok(a.evidence.length > 0, `${a.rule} has evidence`);
    }
  });
});
