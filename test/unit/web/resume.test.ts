// The resume scheduler: pages are granted in arrival order at the configured rate for all sockets together.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ResumeScheduler } from '../../../web/server/socket.ts';

test('pages are granted first come first served, at the rate, with a burst of two pages', async () => {
  const s = new ResumeScheduler(1000, 100); // 10 pages a second
  const order: number[] = [];
  const t0 = performance.now();
  await Promise.all(Array.from({ length: 8 }, (_, i) => s.turn().then(() => order.push(i))));
  const ms = performance.now() - t0;
  assert.deepEqual(order, [0, 1, 2, 3, 4, 5, 6, 7]);
  // 1 page at once, then 7 more at 100 ms each (±scheduling)
  assert.ok(ms >= 550 && ms < 1500, `took ${ms} ms`);
});
