// Backing captured at mmap time (mmap_backing.bt): short-lived programs are judged although /proc/PID/maps is
// gone (or shows another mapping) by the time the registration's line is processed.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { TraceEvent } from '../../../schema/events.ts';
import { backingOfMmap } from '../../../collector/model/mmap-backings.ts';
import { BUF, Harness, PAGE } from '../pipeline/harness.ts';

const EXT4 = 0xef53;

function mmapBacking(h: Harness, pid: number, addr: number, len: number, flags: number, magic: number, name: string): TraceEvent {
  return { kind: 'mmap_backing', tsNs: h.time.nowNs(), pid, tid: pid, comm: 'gup_longterm', addr, len, flags, magic, name };
}

describe('mmap-time backing', () => {
  test('classification by flags and filesystem magic', () => {
    assert.deepEqual(backingOfMmap(1, EXT4, 'f'), { backing: 'file:f', sharedFile: true, mapped: true, mapShared: true });
    assert.equal(backingOfMmap(1, 0x01021994, 'memfd:x').backing, 'shmem');
    assert.equal(backingOfMmap(0x40022, 0, '').backing, 'hugetlb');
    assert.equal(backingOfMmap(1, 0x958458f6, 'memfd:h').sharedFile, false);
    assert.equal(backingOfMmap(1, 0x09041934, '[io_uring]').backing, 'special:anon_inode:[io_uring]');
  });

  test('a refused ext4 MAP_SHARED registration of a process already gone: longterm-pin-file-backed (info)', () => {
    const h = new Harness(); // no maps, no pagemap: the process exited before we looked
    h.feed(mmapBacking(h, 100, BUF, PAGE, 1, EXT4, 'gup_longterm.c_tmpfile_wPeToH'));
    h.registerRing(100, 5, [[BUF, PAGE]], -14);
    const l = h.sink.of('longterm-pin-file-backed');
    assert.equal(l.length, 1);
    assert.equal(l[0].severity, 'info');
    assert.match(l[0].summary, /gup_longterm\.c_tmpfile_wPeToH \(MAP_SHARED\) .* refused \(EFAULT\)/);
  });

  test('munmap forgets the capture; maps decides again', () => {
    const h = new Harness();
    h.feed(mmapBacking(h, 100, BUF, PAGE, 1, EXT4, 'f'), h.ev.munmap(100, BUF, PAGE));
    h.anonBuffer(100, BUF, 1, 0x1000);
    h.registerRing(100, 5, [[BUF, PAGE]], -14);
    assert.equal(h.sink.of('longterm-pin-file-backed').length, 0);
  });
});
