// longterm-pin-file-backed: high when a writable long-term pin on a MAP_SHARED regular file is granted,
// info when refused; silent for memfd/shmem, private file mappings, read-only or short-term pins.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { BUF, Harness, PAGE } from '../pipeline/harness.ts';

describe('longterm-pin-file-backed', () => {
  test('refused io_uring registration of a shared ext4 file mapping (6.5+): info at the buffer start', () => {
    const h = new Harness();
    h.maps.add(100, BUF, BUF + 4 * PAGE, '/var/tmp/pinwatch-uring-file-shared.Ab12Cd (deleted)', true);
    h.registerRing(100, 5, [[BUF, 4 * PAGE]], -14);
    const l = h.sink.of('longterm-pin-file-backed');
    assert.equal(l.length, 1);
    assert.equal(l[0].severity, 'info');
    assert.equal(l[0].addr, BUF);
    assert.equal(l[0].pid, 100);
    assert.equal(l[0].pinId, null);
    assert.match(l[0].summary, /refused \(EFAULT\)/);
    assert.equal(h.c.pins().length, 0);
  });

  test('granted (pre-6.5 kernel): high, with the pin', () => {
    const h = new Harness();
    h.maps.add(100, BUF, BUF + 4 * PAGE, '/data/file', true);
    h.pagemap.map(100, BUF, 0x1000, 4);
    h.registerRing(100, 5, [[BUF + 100, 2 * PAGE]]);
    const l = h.sink.of('longterm-pin-file-backed');
    assert.equal(l.length, 1);
    assert.equal(l[0].severity, 'high');
    assert.equal(l[0].addr, BUF, 'page-aligned buffer start');
    assert.ok(l[0].pinId !== null);
  });

  test('vfio: a writable DMA mapping of a shared file fires; a read-only one does not', () => {
    const h = new Harness();
    h.maps.add(200, BUF, BUF + 8 * PAGE, '/data/file', true);
    h.pagemap.map(200, BUF, 0x1000, 8);
    h.feed(h.ev.vfio(200, 'map', 7, BUF, 0x100000, 4 * PAGE, 3));
    h.feed(h.ev.vfio(200, 'map', 7, BUF + 4 * PAGE, 0x200000, 4 * PAGE, 1));
    assert.deepEqual(h.sink.of('longterm-pin-file-backed').map((a) => [a.severity, a.addr]), [['high', BUF]]);
  });

  test('silent: memfd (shmem), private file mapping, anon refused for another reason, vmsplice of a shared file', () => {
    const h = new Harness();
    h.maps.add(100, BUF, BUF + 4 * PAGE, '/memfd:pinwatch (deleted)', true);
    h.maps.add(100, BUF + 4 * PAGE, BUF + 8 * PAGE, '/data/file', false);
    h.maps.add(100, BUF + 8 * PAGE, BUF + 12 * PAGE, '', false);
    h.maps.add(100, BUF + 12 * PAGE, BUF + 16 * PAGE, '/data/file', true);
    h.pagemap.map(100, BUF, 0x1000, 16);
    h.registerRing(100, 5, [[BUF, 4 * PAGE]]);
    h.registerRing(100, 6, [[BUF + 4 * PAGE, 4 * PAGE]]);
    h.registerRing(100, 7, [[BUF + 8 * PAGE, 4 * PAGE]], -12);
    h.feed(h.ev.iovec(100, 9, 0, BUF + 12 * PAGE, PAGE, { source: 'vmsplice' }), h.ev.pinResult(100, 9, 1, PAGE, { source: 'vmsplice' }));
    h.feed(h.ev.pinResult(100, 5, 0, 0, { opcode: 1 }), h.ev.pinResult(100, 6, 0, 0, { opcode: 1 }));
    assert.deepEqual(h.sink.anomalies, []);
    assert.equal(h.c.pins().length, 1, 'the vmsplice pin');
    assert.equal(h.sink.pinUpdates.find((p) => p.handle === 'ring fd 5 slot 0')!.backing, 'shmem');
  });
});
