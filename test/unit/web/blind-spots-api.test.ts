// What the dashboard says it could not see, through its API handler on a real recording: capture gaps on
// /api/overview (newest first, with the total) and on the timeline of a page whose pin they overlap; pinned
// memory of unknown source (VmPin beyond the named pins) per process, less what live pins explain.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { PinSummary } from '../../../schema/pins.ts';
import { unattributedPinned, type CaptureGap } from '../../../schema/reliability.ts';
import type { TimelineData } from '../../../schema/stored.ts';
import { Store, StoreQueries } from '../../../collector/store/index.ts';
import type { OverviewData } from '../../../web/shared/wire.ts';
import type { DataSource } from '../../../web/server/sources.ts';
import { SESSION, pin, tempDir } from '../store/helpers.ts';
import { serveApi } from './api-server.ts';

const gap = (over: Partial<CaptureGap>): CaptureGap => ({
  id: 0, process: 'main', cause: 'bpftrace exited (SIGKILL)', startNs: 0, endNs: null, startWallMs: 1_700_000_000_000, endWallMs: null, eventsLost: null, ...over,
});

describe('blind spots on the dashboard: capture gaps, pinned memory of unknown source', () => {
  let server: Awaited<ReturnType<typeof serveApi>>;
  let base: string;
  let reader: StoreQueries;
  let livePins: PinSummary[] = [];
  const cleanups: (() => void)[] = [];

  before(async () => {
    const file = join(tempDir({ after: (fn) => cleanups.push(fn) }), 'gaps.db');
    const s = Store.open(file);
    s.startSession(SESSION);
    s.pin(pin(1, { createdNs: 1_000_000, releasedNs: 9_000_000 }));
    s.event({ seq: 1, kind: 'exit', tsNs: 2_000_000, pid: 100, tid: 100, comm: 'app' });
    // before the pin, inside it (closed), and one still open after it was released
    s.gap(gap({ process: 'faults', startNs: 100, endNs: 200, endWallMs: 1_700_000_000_001, eventsLost: 0 }));
    s.gap(gap({ startNs: 3_000_000, endNs: 4_500_000, endWallMs: 1_700_000_000_002, eventsLost: 12 }));
    s.gap(gap({ process: 'faults', startNs: 20_000_000, cause: 'fault watcher exited (SIGKILL)' }));
    // qemu: 1 GiB VmPin, 1,000 pages named at discovery; app: fully named; vfio: VmLck only (no pin claim)
    s.pinnedMemory({ tsNs: 500, pid: 4242, comm: 'qemu-system-x86', vmPinPages: 262_144, vmLckPages: 0, explainedPages: 1000 });
    s.pinnedMemory({ tsNs: 500, pid: 100, comm: 'app', vmPinPages: 4, vmLckPages: 0, explainedPages: 4 });
    s.pinnedMemory({ tsNs: 500, pid: 77, comm: 'vfio-user', vmPinPages: 0, vmLckPages: 1 << 20, explainedPages: 0 });
    s.close();
    reader = StoreQueries.open(file);
    const source = {
      reader: () => reader,
      info: () => ({ id: 'main', kind: 'replay', name: 'gaps.db', file }),
      eventCounts: () => ({}),
      pins: () => livePins,
      lostEvents: () => 0,
      verifySweep: () => null,
      now: () => ({ nowNs: 30_000_000, wallMs: 0 }),
    } as unknown as DataSource;
    server = await serveApi(source);
    base = server.base;
  });

  after(async () => {
    await server.close();
    reader.close();
    for (const fn of cleanups) fn();
  });

  const get = async <T,>(path: string): Promise<T> => {
    const res = await fetch(base + path);
    assert.equal(res.status, 200, path);
    return (await res.json()) as T;
  };

  test('/api/overview: every gap, newest first, the open one without an end; unknown-source pages per process', async () => {
    livePins = [];
    const o = await get<OverviewData>('/api/overview');
    assert.equal(o.gapCount, 3);
    assert.deepEqual(o.gaps.map((g) => [g.process, g.startNs, g.endNs, g.eventsLost]), [
      ['faults', 20_000_000, null, null],
      ['main', 3_000_000, 4_500_000, 12],
      ['faults', 100, 200, 0],
    ]);
    assert.deepEqual(o.unattributed.map((m) => [m.pid, m.comm, m.unexplainedPages]), [[4242, 'qemu-system-x86', 262_144 - 1000]]);
    assert.equal(o.discovered, 3);
  });

  test('a traced pin of the process since discovery explains its pages', async () => {
    livePins = [{ ...pin(7, { pid: 4242, comm: 'qemu-system-x86', pageCount: 200_000 }) } as unknown as PinSummary];
    const o = await get<OverviewData>('/api/overview');
    assert.deepEqual(o.unattributed.map((m) => [m.pid, m.unexplainedPages, m.livePinPages]), [[4242, 262_144 - 200_000, 200_000]]);
    livePins = [{ ...pin(7, { pid: 4242, comm: 'qemu-system-x86', pageCount: 262_144 }) } as unknown as PinSummary];
    assert.deepEqual((await get<OverviewData>('/api/overview')).unattributed, []);
  });

  test("/api/timeline: the gaps overlapping the page's pin, not the one before it", async () => {
    const t = await get<TimelineData>('/api/timeline?pid=100&addr=0x7f0000000000');
    assert.deepEqual(t.gaps.map((g) => [g.startNs, g.endNs]), [[3_000_000, 4_500_000]]);
  });

  test('unattributedPinned: largest first, live pin pages explain, VmLck alone is no claim', () => {
    const rows = [
      { tsNs: 0, pid: 1, comm: 'a', vmPinPages: 10, vmLckPages: 0, explainedPages: 0 },
      { tsNs: 0, pid: 2, comm: 'b', vmPinPages: 50, vmLckPages: 0, explainedPages: 10 },
      { tsNs: 0, pid: 3, comm: 'c', vmPinPages: 0, vmLckPages: 99, explainedPages: 0 },
    ];
    assert.deepEqual(unattributedPinned(rows, new Map([[1, 4]])).map((m) => [m.pid, m.unexplainedPages]), [[2, 40], [1, 6]]);
  });
});
