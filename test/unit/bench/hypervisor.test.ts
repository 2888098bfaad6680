// The hypervisor figures' own arithmetic (issue 11): the extrapolation to 256 GiB and the fake pagemap's two
// layouts (16 GiB-contiguous extents, fully fragmented), which the RSS figures' meaning rests on.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { GUEST_VA, HypervisorPagemap, guestEvents } from '../../../bench/harness/hypervisor.ts';
import { linearFit } from '../../../bench/harness/pinned-real.ts';
import { PAGE_SIZE } from '../../../schema/kernel.ts';

test('the extrapolation is the least-squares line at 256 GiB', () => {
  const exact = linearFit([0, 1, 0, 4, 0, 8], [100, 110, 100, 140, 100, 180]);
  assert.ok(Math.abs(exact.slope - 10) < 1e-9 && Math.abs(exact.intercept - 100) < 1e-9);
  assert.ok(Math.abs(exact.at256 - 2660) < 1e-9);
  // Noisy points: y = 100 + 10x ± 2 pulls the line symmetrically.
  const f = linearFit([0, 4, 0, 4], [98, 142, 102, 138]);
  assert.ok(Math.abs(f.slope - 10) < 1e-9 && Math.abs(f.intercept - 100) < 1e-9, `${f.slope} ${f.intercept}`);
  assert.equal(f.points, 4);
  assert.equal(linearFit([0, 0], [5, 7]).slope, 0, 'one x value: no slope, the mean');
});

/** Runs of physically adjacent pfns in `n` pages of VM `vm` from page `first`. */
function runsOf(pm: HypervisorPagemap, vm: number, first: number, n: number): number {
  const pfns = new Float64Array(n);
  pm.readInto(700_000 + vm, GUEST_VA + first * PAGE_SIZE, n, pfns, new Uint8Array(n), 0);
  let runs = 1;
  for (let i = 1; i < n; i++) if (pfns[i] !== pfns[i - 1] + 1) runs++;
  return runs;
}

test('contiguous layout: one physical run per extent, extents of different VMs apart', () => {
  // 4 VMs × 1 GiB in 256 MiB extents: 4 runs a VM.
  const pm = new HypervisorPagemap('contiguous', 4, 1, 0.25);
  assert.equal(runsOf(pm, 0, 0, 262_144), 4);
  assert.equal(pm.runsOf(262_144), 4);
  const seen = new Set<number>();
  for (let vm = 0; vm < 4; vm++) for (const p of [0, 65_535, 65_536, 262_143]) seen.add(pm.pfnOf(vm, p));
  assert.equal(seen.size, 16, 'no pfn handed out twice');
  assert.notEqual(pm.pfnOf(1, 0), pm.pfnOf(0, 262_143) + 1, 'the next VM does not continue the last extent');
});

test('fragmented layout: no two neighbouring pages physically adjacent, no pfn twice', () => {
  const pm = new HypervisorPagemap('fragmented', 2, 0.125, 16);
  const n = 32_768;
  assert.equal(runsOf(pm, 0, 0, n), n);
  const all = new Set<number>();
  for (let vm = 0; vm < 2; vm++) for (let p = 0; p < n; p++) all.add(pm.pfnOf(vm, p));
  assert.equal(all.size, 2 * n);
});

test('fragmented layout at full scale (4 × 64 GiB): the first and last VM, every page its own pfn (exact past 2^53 products)', () => {
  const pm = new HypervisorPagemap('fragmented', 4, 64, 16);
  const pages = 2 ** 24;
  const seen = new Uint8Array(2 ** 27 / 8);
  const pfns = new Float64Array(65_536);
  const states = new Uint8Array(65_536);
  let twice = 0;
  for (const vm of [0, 3]) {
    for (let first = 0; first < pages; first += pfns.length) {
      pm.readInto(700_000 + vm, GUEST_VA + first * PAGE_SIZE, pfns.length, pfns, states, 0);
      for (let i = 0; i < pfns.length; i++) {
        const pfn = pfns[i];
        const bit = 1 << (pfn & 7);
        if (seen[pfn >>> 3] & bit) twice++;
        seen[pfn >>> 3] |= bit;
      }
    }
  }
  assert.equal(twice, 0);
  assert.equal(pm.pfnOf(3, pages - 1), pfns[pfns.length - 1], 'readInto and pfnOf agree');
});

test('a guest is a fork and one VFIO MAP_DMA of all its RAM', () => {
  const { fork, map } = guestEvents(2, 64);
  assert.equal(fork.kind, 'fork');
  assert.equal(map.kind, 'vfio_dma');
  if (map.kind !== 'vfio_dma' || fork.kind !== 'fork') return;
  assert.equal(map.size, 64 * 2 ** 30);
  assert.equal(map.pid, fork.childPid);
  assert.equal(map.op, 'map');
});
