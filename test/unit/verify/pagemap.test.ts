// ProcPagemapReader: bit decoding (on a crafted pagemap file through procRoot), the real /proc/self, and a
// process that exits while we hold its pagemap fd (reads become errors, never exceptions).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, openSync, closeSync, rmSync, writeSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import {
  PM_HIDDEN, PM_PRESENT, PM_SWAPPED, ProcPagemapReader, isProcessGoneError, readPagesInto,
} from '../../../collector/verify/pagemap.ts';
import { FakePagemapReader, FakeTime } from '../../support/fakes.ts';

const PAGE = 4096;

describe('ProcPagemapReader decoding (crafted pagemap)', () => {
  const root = mkdtempSync(join(tmpdir(), 'pinwatch-pagemap-'));
  after(() => rmSync(root, { recursive: true, force: true }));
  const pid = 4242;
  const base = 0x4000_0000; // offset 2 MiB into the file
  mkdirSync(join(root, String(pid)));
  const fd = openSync(join(root, String(pid), 'pagemap'), 'w');
  const entry = (hi: number, lo: number) => {
    const b = Buffer.alloc(8);
    b.writeUInt32LE(lo >>> 0, 0);
    b.writeUInt32LE(hi >>> 0, 4);
    return b;
  };
  const entries = [
    entry(0x8000_0001, 0x2345_6789), // present, pfn 0x123456789 (> 2^32)
    entry(0x0000_0000, 0x0000_0000), // not present
    entry(0x4000_0000, 0x0000_1234), // swapped (type/offset, not a pfn)
    entry(0x8000_0000, 0x0000_0000), // present, pfn hidden (not root)
    entry(0x8180_0000, 0x0000_0042), // present + soft-dirty (55) + exclusive (56): pfn 0x42
  ];
  entries.forEach((b, i) => writeSync(fd, b, 0, 8, ((base / PAGE) + i) * 8));
  closeSync(fd);
  const reader = new ProcPagemapReader({ procRoot: root, clock: new FakeTime(5) });

  test('read(): present / swapped / hidden / flags masked, pfns above 2^32', () => {
    const r = reader.read(pid, base, 5);
    assert.equal(r.length, 5);
    assert.deepEqual(r.map((x) => [x.present, x.swapped, x.pfn]), [
      [true, false, 0x123456789],
      [false, false, null],
      [false, true, null],
      [true, false, null],
      [true, false, 0x42],
    ]);
    assert.equal(r[0].addr, base);
    assert.equal(r[4].addr, base + 4 * PAGE);
    assert.equal(r[0].tsNs, 5);
    assert.ok(r.every((x) => x.error === undefined));
  });

  test('readInto(): typed arrays at an offset', () => {
    const pfn = new Float64Array(7);
    const st = new Uint8Array(7);
    assert.equal(reader.readInto(pid, base, 5, pfn, st, 2), null);
    assert.equal(pfn[2], 0x123456789);
    assert.ok(Number.isNaN(pfn[3]) && Number.isNaN(pfn[4]) && Number.isNaN(pfn[5]));
    assert.deepEqual([...st.slice(2)], [PM_PRESENT, 0, PM_SWAPPED, PM_PRESENT | PM_HIDDEN, PM_PRESENT]);
  });

  test('reading past the end of the file: pages missing, not an exception', () => {
    const r = reader.read(pid, base + 4 * PAGE, 3);
    assert.equal(r[0].pfn, 0x42);
    assert.equal(r[1].present, false);
  });

  test('a pid that does not exist is an error read, not a throw', () => {
    const r = reader.read(999999, base, 2);
    assert.equal(r.length, 2);
    assert.ok(isProcessGoneError(r[0].error), r[0].error);
    assert.equal(r[0].present, false);
  });
});

describe('ProcPagemapReader on the real /proc', () => {
  test('this process: a stack page is present; pfn visible when root, hidden otherwise', () => {
    const maps = readFileSync('/proc/self/maps', 'utf8');
    const m = /^([0-9a-f]+)-([0-9a-f]+) .*\[stack\]$/m.exec(maps);
    assert.ok(m, 'a [stack] mapping');
    const end = parseInt(m[2], 16);
    const reader = new ProcPagemapReader();
    const reads = reader.read(process.pid, end - 16 * PAGE, 16);
    const present = reads.filter((r) => r.present);
    assert.ok(present.length > 0, 'the top of the stack is mapped');
    if (process.getuid?.() === 0) assert.ok(present.every((r) => typeof r.pfn === 'number' && r.pfn > 0));
    else assert.ok(present.every((r) => r.pfn === null));
    reader.close();
  });

  test('a process that exits while we hold its fd: reads turn into "process gone" errors', async () => {
    const child = spawn('sleep', ['30'], { stdio: 'ignore' });
    await new Promise((r) => child.once('spawn', r));
    const maps = readFileSync(`/proc/${child.pid}/maps`, 'utf8');
    const m = /^([0-9a-f]+)-([0-9a-f]+) .*\[stack\]$/m.exec(maps)!;
    const end = parseInt(m[2], 16);
    const reader = new ProcPagemapReader();
    const first = reader.read(child.pid!, end - PAGE, 1);
    assert.equal(first[0].error, undefined);
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGKILL');
    await exited;
    const again = reader.read(child.pid!, end - PAGE, 1);
    assert.ok(isProcessGoneError(again[0].error), String(again[0].error));
    const third = reader.read(child.pid!, end - PAGE, 1); // the fd was dropped: reopen fails with ENOENT
    assert.ok(isProcessGoneError(third[0].error), String(third[0].error));
    reader.close();
  });
});

describe('readPagesInto over a plain PagemapReader (fallback)', () => {
  test('converts objects to arrays and passes errors through', () => {
    const fake = new FakePagemapReader().map(1, 0x10000, 0x77, 2);
    fake.hidePfns = false;
    const pfn = new Float64Array(3);
    const st = new Uint8Array(3);
    assert.equal(readPagesInto(fake, 1, 0x10000, 3, pfn, st, 0), null);
    assert.equal(pfn[0], 0x77);
    assert.equal(pfn[1], 0x78);
    assert.ok(Number.isNaN(pfn[2]));
    assert.deepEqual([...st], [PM_PRESENT, PM_PRESENT, 0]);
    fake.kill(1);
    assert.ok(isProcessGoneError(readPagesInto(fake, 1, 0x10000, 1, pfn, st, 0)));
  });
});
