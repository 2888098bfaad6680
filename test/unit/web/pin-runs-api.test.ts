// GET /api/pins/:id/runs: a pin's runs a page at a time (offset, limit capped at PIN_RUNS_PAGE_MAX), 404 for an
// unknown pin, 400 for a bad parameter — through the dashboard's API handler on a real recording.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { PinRun } from '../../../schema/pin-runs.ts';
import { PIN_RUNS_PAGE_MAX, type PinRunsPage } from '../../../schema/stored.ts';
import { Store, StoreQueries } from '../../../collector/store/index.ts';
import { runsPaging } from '../../../web/server/api.ts';
import type { DataSource } from '../../../web/server/sources.ts';
import { SESSION, pin, tempDir } from '../store/helpers.ts';
import { serveApi } from './api-server.ts';

const RUNS = 2500;

describe('GET /api/pins/:id/runs', () => {
  let server: Awaited<ReturnType<typeof serveApi>>;
  let base: string;
  let reader: StoreQueries;
  const cleanups: (() => void)[] = [];

  before(async () => {
    const file = join(tempDir({ after: (fn) => cleanups.push(fn) }), 'api.db');
    const s = Store.open(file);
    s.startSession(SESSION);
    // every other pfn: 2,500 one-page runs (a fragmented pin); pin 2 is one contiguous run
    const runs: PinRun[] = Array.from({ length: RUNS }, (_, i) => ({ page: i, count: 1, pinnedPfn: 0x10000 + 2 * i, currentPfn: 0x10000 + 2 * i, snapshotLate: false }));
    s.pin(pin(1, { len: RUNS * 4096, pageCount: RUNS, runs }));
    s.pin(pin(2));
    s.close();
    reader = StoreQueries.open(file);
    const source = { reader: () => reader } as unknown as DataSource;
    server = await serveApi(source);
    base = server.base;
  });

  after(async () => {
    await server.close();
    reader.close();
    for (const fn of cleanups) fn();
  });

  async function get(path: string): Promise<{ status: number; body: PinRunsPage & { error?: string } }> {
    const res = await fetch(base + path);
    return { status: res.status, body: (await res.json()) as PinRunsPage & { error?: string } };
  }

  test('default page, then offset/limit paging to the end', async () => {
    const first = await get('/api/pins/1/runs');
    assert.equal(first.status, 200);
    assert.deepEqual([first.body.pinId, first.body.pageCount, first.body.totalRuns, first.body.offset, first.body.runs.length], [1, RUNS, RUNS, 0, 200]);
    const seen: number[] = [];
    for (let offset = 0; offset < RUNS; offset += 700) {
      const { body } = await get(`/api/pins/1/runs?offset=${offset}&limit=700`);
      seen.push(...body.runs.map((r) => r.page));
    }
    assert.deepEqual(seen, Array.from({ length: RUNS }, (_, i) => i), 'every run once, in page order');
    const past = await get(`/api/pins/1/runs?offset=${RUNS}&limit=10`);
    assert.deepEqual([past.status, past.body.runs.length], [200, 0]);
  });

  test('a limit above the cap is capped; a contiguous pin is one run', async () => {
    const big = await get('/api/pins/1/runs?limit=100000');
    assert.equal(big.body.runs.length, PIN_RUNS_PAGE_MAX);
    const one = await get('/api/pins/2/runs');
    assert.deepEqual(one.body.runs, [{ page: 0, count: 4, pinnedPfn: 0x1000, currentPfn: 0x1000, snapshotLate: false }]);
  });

  test('unknown pin 404, bad parameters 400', async () => {
    assert.equal((await get('/api/pins/99/runs')).status, 404);
    assert.equal((await get('/api/pins/1/runs?offset=-1')).status, 400);
    assert.equal((await get('/api/pins/1/runs?limit=ten')).status, 400);
    assert.deepEqual(runsPaging(new URL('http://x/?limit=0')), { offset: 0, limit: 1 });
  });
});
