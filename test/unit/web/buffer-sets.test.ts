// The dashboard's buffer sets: a VM's RAM mapped through one VFIO container is one set with its iova ranges,
// an io_uring ring's slots one set, each MR its own.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { bufferSets, holderOf } from '../../../web/components/buffer-sets.ts';
import type { PinSummary } from '../../../schema/pins.ts';

let id = 0;
function pin(o: Partial<PinSummary>): PinSummary {
  return {
    id: ++id, pid: 100, comm: 'qemu-system-x86', source: 'vfio', handle: '', addr: 0x7f0000000000, len: 0x1000, writable: true, longterm: true,
    backing: 'anon', createdNs: 1, releasedNs: null, state: 'intact', pageCount: 1, divergedPages: 0, ...o,
  };
}

test('VFIO maps of one container are one set named by their iova ranges; other holders their own sets', () => {
  const pins = [
    pin({ handle: 'container fd 8 iova 0x0+0xa0000', len: 0xa0000, pageCount: 160 }),
    pin({ handle: 'container fd 8 iova 0x100000+0x1f00000', addr: 0x7f0000100000, len: 0x1f00000, pageCount: 7936, state: 'zapped' }),
    pin({ handle: 'container fd 8 iova 0xfffc0000+0x40000', len: 0x40000, pageCount: 64, releasedNs: 5, state: 'released' }),
    pin({ pid: 200, comm: 'fio', source: 'io_uring', handle: 'ring fd 5 slot 0' }),
    pin({ pid: 200, comm: 'fio', source: 'io_uring', handle: 'ring fd 5 slot 1' }),
    pin({ pid: 300, comm: 'ib', source: 'rdma', handle: 'MR 0x7f0000000000+0x4000 (ib_umem_get)', len: 0x4000, pageCount: 4 }),
  ];
  const sets = bufferSets(pins);
  assert.equal(sets.length, 3);
  const vm = sets[0];
  assert.equal(vm.holder, 'container fd 8');
  assert.deepEqual(vm.identities, ['iova 0x0+0xa0000', 'iova 0x100000+0x1f00000', 'iova 0xfffc0000+0x40000']);
  assert.equal(vm.pins, 3);
  assert.equal(vm.live, 2);
  assert.equal(vm.pages, 160 + 7936 + 64);
  assert.equal(vm.state, 'zapped', 'the worst member state');
  const ring = sets.find((s) => s.source === 'io_uring')!;
  assert.deepEqual(ring.identities, ['slot 0', 'slot 1']);
  assert.equal(holderOf(pins[5]), 'MR 0x7f0000000000+0x4000 (ib_umem_get)');
});
