// Address helpers, RangeMap (DONTFORK / uffd ranges) and /proc/PID/maps parsing and backing classification.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { RangeMap, pageDown, pageUp, pmdDown, pmdIndex } from '../../../collector/model/ranges.ts';
import { ProcMapsReader, backingOf, classifyBacking, parseMaps } from '../../../collector/model/maps.ts';

describe('address helpers', () => {
  test('no 32-bit truncation above 4 GiB', () => {
    const a = 0x7fff_ffff_f123;
    assert.equal(pageDown(a), 0x7fff_ffff_f000);
    assert.equal(pageUp(a), 0x8000_0000_0000);
    assert.equal(pageUp(0x7fff_ffff_f000), 0x7fff_ffff_f000);
    assert.equal(pmdDown(0x7f12_3456_7000), 0x7f12_3440_0000);
    assert.equal(pmdIndex(0x7f12_3456_7000), Math.floor(0x7f12_3456_7000 / 0x200000));
  });
});

describe('RangeMap', () => {
  test('set merges adjacent equal values; remove splits', () => {
    const m = new RangeMap<true>();
    m.set(0x1000, 0x3000, true);
    m.set(0x3000, 0x5000, true);
    assert.equal(m.size, 1);
    assert.ok(m.covers(0x1000, 0x5000));
    m.remove(0x2000, 0x3000);
    assert.equal(m.size, 2);
    assert.ok(!m.covers(0x1000, 0x5000));
    assert.ok(m.covers(0x3000, 0x4000));
    assert.equal(m.at(0x2800), undefined);
    assert.equal(m.at(0x1800)?.end, 0x2000);
  });

  test('set replaces overlapping values; overlapping() clips', () => {
    const m = new RangeMap<number>();
    m.set(0, 100, 1);
    m.set(50, 150, 2);
    assert.deepEqual(m.all().map((e) => [e.start, e.end, e.value]), [[0, 50, 1], [50, 150, 2]]);
    assert.deepEqual(m.overlapping(40, 60).map((e) => [e.start, e.end, e.value]), [[40, 50, 1], [50, 60, 2]]);
    m.removeWhere((v) => v === 1);
    assert.deepEqual(m.all().map((e) => e.value), [2]);
  });

  test('move follows mremap, keepOld copies', () => {
    const m = new RangeMap<true>();
    m.set(0x1000, 0x3000, true);
    m.move(0x1000, 0x2000, 0x9000, false);
    assert.ok(m.covers(0x9000, 0xa000));
    assert.ok(!m.covers(0x1000, 0x2000));
    assert.ok(m.covers(0x2000, 0x3000));
    m.move(0x2000, 0x3000, 0x20000, true);
    assert.ok(m.covers(0x2000, 0x3000) && m.covers(0x20000, 0x21000));
  });

  test('covers needs no gap', () => {
    const m = new RangeMap<true>();
    m.set(0, 10, true);
    m.set(11, 20, true);
    assert.ok(!m.covers(0, 20));
    assert.ok(m.covers(2, 8));
    assert.ok(!m.covers(25, 30));
  });

  test('set/remove agree with the straightforward linear version on random operations', () => {
    // The reference: what RangeMap did before it searched and spliced in place (copy on every remove).
    type E = { start: number; end: number; value: number };
    const refRemove = (es: E[], start: number, end: number): E[] => {
      if (!(end > start) || es.length === 0) return es;
      const out: E[] = [];
      for (const e of es) {
        if (e.end <= start || e.start >= end) out.push(e);
        else {
          if (e.start < start) out.push({ start: e.start, end: start, value: e.value });
          if (e.end > end) out.push({ start: end, end: e.end, value: e.value });
        }
      }
      return out;
    };
    const refSet = (es0: E[], start: number, end: number, value: number): E[] => {
      if (!(end > start)) return es0;
      const es = refRemove(es0, start, end);
      let i = 0;
      while (i < es.length && es[i].start < start) i++;
      es.splice(i, 0, { start, end, value });
      // Merge with the next entry, then with the previous one.
      for (const k of [i, i - 1]) {
        const a = es[k];
        const b = es[k + 1];
        if (a !== undefined && b !== undefined && a.end === b.start && a.value === b.value) {
          a.end = b.end;
          es.splice(k + 1, 1);
        }
      }
      return es;
    };
    let seed = 12345;
    const rnd = (n: number) => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
    for (let round = 0; round < 200; round++) {
      const m = new RangeMap<number>();
      let ref: E[] = [];
      for (let op = 0; op < 60; op++) {
        const a = rnd(120);
        const b = a + rnd(30) - 2; // sometimes empty or reversed
        if (rnd(3) === 0) {
          m.remove(a, b);
          ref = refRemove(ref, a, b);
        } else {
          const v = rnd(3);
          m.set(a, b, v);
          ref = refSet(ref, a, b, v);
        }
        assert.deepEqual(m.all().map((e) => [e.start, e.end, e.value]), ref.map((e) => [e.start, e.end, e.value]), `round ${round} op ${op}`);
      }
    }
  });
});

describe('maps', () => {
  const text = [
    '55d0c0a00000-55d0c0a21000 rw-p 00000000 00:00 0                          [heap]',
    '7f0000000000-7f0000004000 rw-s 00000000 00:01 1234                       /memfd:buf (deleted)',
    '7f0000004000-7f0000008000 rw-s 00000000 08:01 5678                       /var/tmp/data file',
    '7f0000008000-7f000000c000 r--p 00000000 08:01 5678                       /usr/lib/libc.so.6',
    '7f000000c000-7f0000010000 rw-p 00000000 00:00 0 ',
    '7f0000010000-7f0000014000 rw-s 00000000 00:01 77                         /dev/zero (deleted)',
    '7f0000014000-7f0000018000 rw-s 00000000 00:01 78                         /SYSV00000000 (deleted)',
    '7ffd00000000-7ffd00021000 rw-p 00000000 00:00 0                          [stack]',
    'garbage line',
  ].join('\n');

  test('parseMaps reads addresses above 2^32, perms, shared flag and paths with spaces', () => {
    const m = parseMaps(text);
    assert.equal(m.length, 8);
    assert.equal(m[1].start, 0x7f0000000000);
    assert.equal(m[1].shared, true);
    assert.equal(m[2].path, '/var/tmp/data file');
    assert.deepEqual(m.map((x) => x.backing), [
      'anon', 'shmem', 'file:/var/tmp/data file', 'file:/usr/lib/libc.so.6', 'anon', 'shmem', 'shmem', 'anon',
    ]);
  });

  test('classifyBacking: shmem flavours, private /dev/zero is anon', () => {
    assert.equal(classifyBacking('/dev/shm/x', true), 'shmem');
    assert.equal(classifyBacking('/anon_hugepage (deleted)', true), 'shmem');
    assert.equal(classifyBacking('/dev/zero (deleted)', false), 'anon');
    assert.equal(classifyBacking('[anon:buf]', false), 'anon');
    assert.equal(classifyBacking('/data/f (deleted)', true), 'file:/data/f');
  });

  test('backingOf: a shared regular file anywhere in the range wins; private file is not the hazard', () => {
    const m = parseMaps(text);
    assert.deepEqual(backingOf(m, 0x7f0000000000, 0x7f0000004000), { backing: 'shmem', sharedFile: false, mapped: true, mapShared: true });
    assert.equal(backingOf(m, 0x7f0000002000, 0x7f0000006000).sharedFile, true);
    assert.equal(backingOf(m, 0x7f0000008000, 0x7f000000a000).sharedFile, false);
    assert.equal(backingOf(m, 0x1000, 0x2000).mapped, false);
    assert.equal(backingOf(null, 0, 1).backing, 'unknown');
  });

  test('ProcMapsReader reads this process and returns null for a missing one', () => {
    const r = new ProcMapsReader();
    const mine = r.read(process.pid);
    assert.ok(mine && mine.some((x) => x.path === '[stack]'));
    assert.equal(r.read(0x3ffffff0), null);
  });
});
