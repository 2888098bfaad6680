// LiveSession orchestration with fakes of the host and of bpftrace: capture-unavailable errors, wiring of store and
// hub as sinks, events printed while draining are stored, teardown order, failed start cleanup, seq continuation.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import pino from 'pino';
import type { SequencedEvent, TraceEvent } from '../../../schema/events.ts';
import type { Capabilities, Selection } from '../../../collector/capabilities/index.ts';
import type { CollectorSink, ParseSink } from '../../../collector/contracts.ts';
import { CaptureUnavailableError, LiveSession, type LiveSessionDeps } from '../../../collector/live-session.ts';
import { Collector, type CollectorOptions } from '../../../collector/pipeline.ts';
import { Hub } from '../../../collector/publish/index.ts';
import { Store } from '../../../collector/store/index.ts';
import { anomaly, tempDir } from '../store/helpers.ts';

const silent = pino({ level: 'silent' });

function caps(over: Partial<Capabilities> = {}): Capabilities {
  return {
    root: true,
    kernelRelease: '6.18.0-test',
    arch: 'x64',
    bpftrace: { path: '/usr/bin/bpftrace', version: '0.17.0' },
    tracefs: { path: '/sys/kernel/tracing', mounted: true, mountedByUs: false },
    btf: true,
    kprobes: false,
    tracepoints: {},
    kprobeSymbols: {},
    scripts: [],
    ...over,
  };
}

const SELECTION: Selection = {
  mode: 'tracepoint',
  scripts: [{ name: 'tracepoint/madvise', file: '/dev/null', mode: 'tracepoint', probes: ['tracepoint:syscalls:sys_enter_madvise'] }],
  probes: [
    { script: 'tracepoint/madvise', attached: true },
    { script: 'kprobe/wp-page', attached: false, reason: 'tracepoint mode' },
  ],
};

const madvise = (tsNs: number): TraceEvent => ({ kind: 'madvise', tsNs, pid: 42, tid: 42, comm: 'app', addr: 0x7f0000000000, len: 4096, behavior: 4, ret: 0 });

/** A collector that numbers events and forwards them to the sinks (the real one is tested by its owner). */
class FakeCollector {
  readonly counters = { events: 0, anomalies: 0, lostEvents: 0, malformed: 0 };
  readonly parseSink: ParseSink;
  private next: number;
  private nextAnomaly: number;
  constructor(
    readonly opts: CollectorOptions,
    private readonly calls: string[],
  ) {
    this.next = opts.firstEventSeq ?? 1;
    this.nextAnomaly = opts.firstAnomalySeq ?? 1;
    this.parseSink = {
      event: (e) => {
        const se = e as SequencedEvent;
        se.seq = this.next++;
        this.counters.events++;
        for (const s of opts.sinks) s.event(se);
        if (se.kind === 'madvise' && se.tsNs === 999) {
          const a = anomaly(this.nextAnomaly++);
          this.counters.anomalies++;
          for (const s of opts.sinks) s.anomaly(a);
        }
      },
      lost: (n) => {
        this.counters.lostEvents += n;
        for (const s of opts.sinks) s.lost(n);
      },
      ready: () => undefined,
      malformed: () => undefined,
    };
  }
  verifyNow(): void {
    this.calls.push('collector.verifyNow');
  }
  close(): void {
    this.calls.push('collector.close');
  }
}

function fakes(calls: string[], over: Partial<LiveSessionDeps> = {}) {
  let sink: ParseSink | null = null;
  let collector: FakeCollector | null = null;
  const deps: LiveSessionDeps = {
    probeCapabilities: async () => caps(),
    selectScripts: () => SELECTION,
    specialiseKprobes: async (selection) => {
      calls.push('specialiseKprobes');
      return { selection, follNumbering: 'pre-6.3' };
    },
    createCollector: (o) => (collector = new FakeCollector(o, calls)),
    createRunner: (o) => {
      sink = o.sink;
      return {
        start: async () => {
          calls.push('runner.start');
          o.sink.event(madvise(1));
        },
        stop: async () => {
          calls.push('runner.stop');
          // bpftrace prints what it had buffered while it drains: it must still be stored.
          o.sink.event(madvise(2));
          o.sink.lost(3);
        },
      };
    },
    createFaultWatcher: () => ({
      setRegions: () => undefined,
      stop: async () => {
        calls.push('faults.stop');
      },
    }),
    ...over,
  };
  return { deps, sink: () => sink!, collector: () => collector! };
}

test('capture impossible: CaptureUnavailableError with reason and fix, and no database file', async (t) => {
  const dir = tempDir(t);
  const cases: [Partial<Capabilities>, RegExp, RegExp][] = [
    [{ root: false }, /root/, /sudo/],
    [{ bpftrace: null, bpftraceError: 'not found on PATH' }, /bpftrace/, /apt-get install -y bpftrace/],
    [{ tracefs: { path: '/sys/kernel/tracing', mounted: false, mountedByUs: false } }, /tracefs/, /mount -t tracefs/],
  ];
  for (const [over, reason, fix] of cases) {
    const db = join(dir, `x${Math.random()}.db`);
    const live = new LiveSession({ db, logger: silent, deps: { ...fakes([]).deps, probeCapabilities: async () => caps(over) } });
    await assert.rejects(live.start(), (e: unknown) => e instanceof CaptureUnavailableError && reason.test(e.reason) && fix.test(e.fix));
    await live.stop();
    assert.equal(existsSync(db), false);
  }
  const none = new LiveSession({
    db: join(dir, 'none.db'),
    logger: silent,
    deps: { ...fakes([]).deps, selectScripts: () => ({ mode: 'tracepoint', scripts: [], probes: [{ script: 'a', attached: false, reason: 'tracepoint x missing' }] }) },
  });
  await assert.rejects(none.start(), (e: unknown) => e instanceof CaptureUnavailableError && /no bpftrace script/.test(e.reason) && /doctor/.test(e.fix));
});

test('start wires store and hub as sinks; stop drains, verifies, flushes and ends the session', async (t) => {
  const db = join(tempDir(t), 'live.db');
  const calls: string[] = [];
  const f = fakes(calls);
  const hub = new Hub();
  const anomalies: number[] = [];
  hub.on('anomaly', (a: { seq: number }) => anomalies.push(a.seq));
  const live = new LiveSession({ db, hub, logger: silent, deps: f.deps });
  const info = await live.start();
  assert.equal(info.mode, 'tracepoint');
  assert.equal(info.kernel, '6.18.0-test');
  assert.deepEqual(info.probes, SELECTION.probes);
  assert.deepEqual(hub.session(), info);
  const sinks = f.collector().opts.sinks as CollectorSink[];
  assert.equal(sinks.length, 2);
  assert.ok(sinks[0] instanceof Store);
  assert.equal(sinks[1], hub);
  assert.equal(typeof f.collector().opts.onFaultRegions, 'function');

  f.sink().event(madvise(999)); // raises an anomaly
  await live.stop();
  await live.stop(); // idempotent
  assert.deepEqual(calls, ['runner.start', 'runner.stop', 'faults.stop', 'collector.verifyNow', 'collector.close']);
  assert.deepEqual(anomalies, [1]);
  assert.deepEqual(live.counters(), { events: 3, anomalies: 1, lostEvents: 3, malformed: 0 });

  const r = Store.open(db, { readonly: true });
  t.after(() => r.close());
  assert.deepEqual(r.eventsBySeq([1, 2, 3]).map((e) => e.tsNs), [1, 999, 2], 'the event printed while draining is stored');
  assert.equal(r.anomalies().length, 1);
  const [s] = r.sessions();
  assert.notEqual(s.endedWallMs, null);
  assert.equal(s.lostEvents, 3);
  assert.equal(hub.session()?.endedWallMs, s.endedWallMs);
});

test('a second session on the same file continues event and anomaly numbering', async (t) => {
  const db = join(tempDir(t), 'again.db');
  for (const expectFirst of [1, 3]) {
    const f = fakes([]);
    const live = new LiveSession({ db, logger: silent, deps: f.deps });
    await live.start();
    assert.equal(f.collector().opts.firstEventSeq, expectFirst);
    await live.stop();
  }
  const r = Store.open(db, { readonly: true });
  t.after(() => r.close());
  assert.equal(r.sessions().length, 2);
  assert.deepEqual(r.events().map((e) => e.seq), [1, 2, 3, 4]);
});

test('bpftrace failing to attach: the error propagates, the session is ended and the file closed', async (t) => {
  const db = join(tempDir(t), 'fail.db');
  const calls: string[] = [];
  const f = fakes(calls, {
    createRunner: () => ({
      start: async () => {
        throw new Error('bpftrace exited (code 1) before its probes were attached');
      },
      stop: async () => {
        calls.push('runner.stop');
      },
    }),
  });
  const live = new LiveSession({ db, logger: silent, deps: f.deps });
  await assert.rejects(live.start(), /before its probes were attached/);
  assert.ok(calls.includes('collector.close'));
  // The file is not held: another writer can open it.
  const again = Store.open(db);
  assert.notEqual(again.sessions()[0].endedWallMs, null);
  again.close();
});

test('bpftrace dying during capture: restarted after a backoff, the capture gap stored and closed', async (t) => {
  const db = join(tempDir(t), 'exit.db');
  const exits: ((code: number | null, signal: string | null) => void)[] = [];
  const f = fakes([], {
    createCollector: (o) => new Collector(o),
    discover: undefined, // not this host's pins
    createRunner: (o) => {
      exits.push(o.onExit);
      return { start: async () => undefined, stop: async () => undefined, readyTsNs: Number(process.hrtime.bigint()) };
    },
  });
  const hub = new Hub();
  const lost: string[] = [];
  const live = new LiveSession({ db, hub, logger: silent, deps: f.deps, onCaptureLost: (m) => lost.push(m), restartPolicy: { firstDelayMs: 10 } });
  await live.start();
  exits[0](null, 'SIGKILL');
  assert.equal(hub.status()?.level, 'warning');
  assert.equal(hub.gaps().length, 1);
  assert.equal(hub.gaps()[0].endNs, null);
  for (let i = 0; i < 100 && live.restarts.main === 0; i++) await new Promise((r) => setTimeout(r, 10));
  assert.equal(exits.length, 2, 'a second bpftrace was started');
  assert.equal(live.restarts.main, 1);
  assert.equal(lost.length, 0);
  assert.equal(hub.status()?.level, 'ok');
  const g = hub.gaps()[0];
  assert.equal(g.cause, 'bpftrace exited (SIGKILL)');
  assert.ok(g.endNs !== null && g.endNs >= g.startNs);
  await live.stop();
  const store = Store.open(db, { readonly: true });
  t.after(() => store.close());
  const rows = store.gaps();
  assert.equal(rows.length, 1);
  assert.equal(rows[0].process, 'main');
  assert.ok(rows[0].endNs !== null);
  assert.equal(store.sessions()[0].endReason, 'clean');
});

test('bpftrace failing again and again: given up after 5 failures, error status, session ended bpftrace-gave-up', async (t) => {
  const db = join(tempDir(t), 'giveup.db');
  let first = true;
  const exits: ((code: number | null, signal: string | null) => void)[] = [];
  const f = fakes([], {
    createCollector: (o) => new Collector(o),
    discover: undefined, // not this host's pins
    createRunner: (o) => {
      exits.push(o.onExit);
      const ok = first;
      first = false;
      return { start: async () => (ok ? undefined : Promise.reject(new Error('bpftrace exited (code 1) before its probes were attached'))), stop: async () => undefined };
    },
  });
  const hub = new Hub();
  const lost: string[] = [];
  const live = new LiveSession({ db, hub, logger: silent, deps: f.deps, onCaptureLost: (m) => lost.push(m), restartPolicy: { firstDelayMs: 5, maxDelayMs: 5 } });
  await live.start();
  exits[0](1, null);
  for (let i = 0; i < 200 && lost.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
  assert.equal(lost.length, 1);
  assert.match(lost[0], /gave up restarting bpftrace \(main\) after 5 failures within 60 s; last: bpftrace exited \(code 1\) before/);
  assert.equal(exits.length, 5, 'the first start, then four restarts');
  assert.equal(hub.status()?.level, 'error');
  await live.stop();
  const store = Store.open(db, { readonly: true });
  t.after(() => store.close());
  const s = store.sessions()[0];
  assert.equal(s.endReason, 'bpftrace-gave-up');
  assert.match(s.endDetail!, /after 5 failures/);
  assert.equal(store.gaps()[0].endNs, null, 'the gap never closed');
});

test('the program at start and after a restart is seeded with the processes /proc shows pinning (VmLck, VmPin, rings, devices)', async (t) => {
  const db = join(tempDir(t), 'seed.db');
  const exits: ((code: number | null, signal: string | null) => void)[] = [];
  const seeds: string[] = [];
  let scan = 0;
  const f = fakes([], {
    createCollector: (o) => new Collector(o),
    selectScripts: () => ({ ...SELECTION, scripts: [{ ...SELECTION.scripts[0], text: 'tracepoint:syscalls:sys_exit_munmap /@pw_watch[pid] == 2/ { }' }] }),
    discover: () => {
      scan++;
      return {
        rings: [],
        memory: [
          { pid: 501, comm: 'qemu', vmPinPages: 0, vmLckPages: scan }, // VFIO type1 maps are accounted in VmLck
          { pid: 600 + scan, comm: 'uring', vmPinPages: 2, vmLckPages: 0 },
          { pid: 700, comm: 'idle', vmPinPages: 0, vmLckPages: 0 },
        ],
        devices: [{ pid: 502, comm: 'dpdk', path: '/dev/vfio/3' }],
        ringHolders: [503],
        processes: 4,
        ms: 1,
      };
    },
    createRunner: (o) => {
      exits.push(o.onExit);
      seeds.push((o.scripts.find((s) => s.name === 'runner/watch-seed') as { text?: string } | undefined)?.text ?? '');
      return { start: async () => undefined, stop: async () => undefined, readyTsNs: Number(process.hrtime.bigint()) };
    },
  });
  const live = new LiveSession({ db, logger: silent, deps: f.deps, restartPolicy: { firstDelayMs: 10 } });
  await live.start();
  const pids = (s: string) => [...s.matchAll(/@pw_watch\[(\d+)\] = 2;/g)].map((m) => Number(m[1]));
  assert.deepEqual(pids(seeds[0]), [501, 502, 503, 601]);
  exits[0](null, 'SIGKILL');
  for (let i = 0; i < 100 && seeds.length < 2; i++) await new Promise((r) => setTimeout(r, 10));
  assert.deepEqual(pids(seeds[1]), [501, 502, 503, 602], 'the restart scans /proc again');
  await live.stop();
});
