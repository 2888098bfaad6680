// Unit tests of collector/parse: every tracepoint-mode kind, lost_events shapes, escapes, malformed input.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseLine, receivedByKind, TRACEPOINT_KINDS } from '../../../collector/parse/index.ts';
import { kprobeParsers } from '../../../collector/parse/kprobe.ts';
import type { ParseSink } from '../../../collector/contracts.ts';
import type { TraceEvent } from '../../../schema/events.ts';

interface Recorded {
  events: TraceEvent[];
  lost: number[];
  ready: string[];
  readyAt: [string, number][];
  malformed: { line: string; reason: string }[];
  messages: string[];
}

// A sink object whose methods record into arrays (lost/readyAt names clash with arrays, so keep them apart).
function sinkWith() {
  const got: Recorded = { events: [], lost: [], ready: [], readyAt: [], malformed: [], messages: [] };
  const sink = {
    event: (e: TraceEvent) => void got.events.push(e),
    lost: (n: number) => void got.lost.push(n),
    ready: (t: string) => void got.ready.push(t),
    readyAt: (t: string, ts: number) => void got.readyAt.push([t, ts]),
    malformed: (line: string, reason: string) => void got.malformed.push({ line, reason }),
    message: (t: string) => void got.messages.push(t),
  };
  return { sink, got };
}

/** A printf record exactly as bpftrace 0.17 -f json writes it. */
function rec(data: string): string {
  return '{"type": "printf", "data": ' + JSON.stringify(data) + '}';
}
const T = '\t';
const line = (...f: (string | number)[]) => rec(f.join(T));

function one(l: string): TraceEvent {
  const { sink, got } = sinkWith();
  parseLine(l, sink);
  assert.deepEqual(got.malformed, [], `unexpected malformed for ${l}`);
  assert.equal(got.events.length, 1, `one event for ${l}`);
  return got.events[0];
}

function bad(l: string, reasonPart: string | RegExp): void {
  const { sink, got } = sinkWith();
  assert.doesNotThrow(() => parseLine(l, sink));
  assert.equal(got.events.length, 0, `no event for ${l}`);
  assert.equal(got.malformed.length, 1, `one malformed for ${l}`);
  assert.equal(got.malformed[0].line, l);
  if (typeof reasonPart === 'string') assert.ok(got.malformed[0].reason.includes(reasonPart), got.malformed[0].reason);
  else assert.match(got.malformed[0].reason, reasonPart);
}

test('pin_iovec (io_uring and vmsplice)', () => {
  assert.deepEqual(one(line('pin_iovec', 418076110796, 13694, 13695, 'io_uring', 3, 16, 5, 140275911491584, 8192, 'iou-server')), {
    kind: 'pin_iovec', tsNs: 418076110796, pid: 13694, tid: 13695, comm: 'iou-server',
    source: 'io_uring', fd: 3, opcode: 16, index: 5, addr: 140275911491584, len: 8192,
  });
  const v = one(line('pin_iovec', 1, 2, 2, 'vmsplice', 4, 0, 0, 4096, 4096, 'sp'));
  assert.equal(v.kind === 'pin_iovec' && v.source, 'vmsplice');
});

test('pin_result with negative ret and hex mm', () => {
  assert.deepEqual(one(line('pin_result', 418076140312, 13694, 13694, 'io_uring', 3, 0, 3, -14, '0xffff888100072bc0', 'iou')), {
    kind: 'pin_result', tsNs: 418076140312, pid: 13694, tid: 13694, comm: 'iou',
    source: 'io_uring', fd: 3, opcode: 0, nr: 3, ret: -14, mm: '0xffff888100072bc0',
  });
});

test('vfio_dma map and unmap', () => {
  assert.deepEqual(one(line('vfio_dma', 10, 20, 21, 'map', 7, 140275911491584, 1048576, 2097152, 3, -25, 'qemu')), {
    kind: 'vfio_dma', tsNs: 10, pid: 20, tid: 21, comm: 'qemu',
    op: 'map', fd: 7, vaddr: 140275911491584, iova: 1048576, size: 2097152, flags: 3, ret: -25,
  });
  const u = one(line('vfio_dma', 10, 20, 21, 'unmap', 7, 0, 1048576, 4096, 0, 0, 'qemu'));
  assert.equal(u.kind === 'vfio_dma' && u.op, 'unmap');
});

test('uffd_register register and unregister', () => {
  assert.deepEqual(one(line('uffd_register', 5, 6, 7, 'register', 9, 4096, 8192, 1, 0, 'pc')), {
    kind: 'uffd_register', tsNs: 5, pid: 6, tid: 7, comm: 'pc', op: 'register', fd: 9, addr: 4096, len: 8192, mode: 1, ret: 0,
  });
  const u = one(line('uffd_register', 5, 6, 7, 'unregister', 9, 4096, 8192, 0, -22, 'pc'));
  assert.equal(u.kind === 'uffd_register' && u.op, 'unregister');
});

test('madvise, munmap, mremap, mmap_fixed', () => {
  assert.deepEqual(one(line('madvise', 406649616809, 13485, 13486, 139779106426880, 4096, 4, 0, 'sleep')), {
    kind: 'madvise', tsNs: 406649616809, pid: 13485, tid: 13486, comm: 'sleep', addr: 139779106426880, len: 4096, behavior: 4, ret: 0,
  });
  assert.deepEqual(one(line('munmap', 1, 2, 3, 4096, 8192, -22, 'x')), {
    kind: 'munmap', tsNs: 1, pid: 2, tid: 3, comm: 'x', addr: 4096, len: 8192, ret: -22,
  });
  assert.deepEqual(one(line('mremap', 1, 2, 3, 4096, 8192, 16384, 7, 65536, 65536, 'x')), {
    kind: 'mremap', tsNs: 1, pid: 2, tid: 3, comm: 'x', addr: 4096, oldLen: 8192, newLen: 16384, flags: 7, newAddrArg: 65536, ret: 65536,
  });
  assert.deepEqual(one(line('mmap_fixed', 1, 2, 3, 4096, 8192, 3, 50, -1, 4096, 'x')), {
    kind: 'mmap_fixed', tsNs: 1, pid: 2, tid: 3, comm: 'x', addr: 4096, len: 8192, prot: 3, flags: 50, fd: -1, ret: 4096,
  });
});

test('fork (childComm = comm, cloneFlags -1), exit, close, fault', () => {
  assert.deepEqual(one(line('fork', 1, 2, 3, 99, 17, 'bash')), {
    kind: 'fork', tsNs: 1, pid: 2, tid: 3, comm: 'bash', childPid: 99, childComm: 'bash', cloneFlags: 17,
  });
  const f = one(line('fork', 1, 2, 3, 99, -1, 'bash'));
  assert.equal(f.kind === 'fork' && f.cloneFlags, -1);
  assert.deepEqual(one(line('exit', 1, 2, 2, 'bash')), { kind: 'exit', tsNs: 1, pid: 2, tid: 2, comm: 'bash' });
  assert.deepEqual(one(line('close', 1, 2, 3, 5, 'srv')), { kind: 'close', tsNs: 1, pid: 2, tid: 3, comm: 'srv', fd: 5 });
  assert.deepEqual(one(line('shmdt', 1, 2, 3, 139779106426880, 16777216, 0, 'fio')), {
    kind: 'shmdt', tsNs: 1, pid: 2, tid: 3, comm: 'fio', addr: 139779106426880, len: 16777216, ret: 0,
  });
  assert.deepEqual(one(line('uring_enter', 1, 2, 3, 4, 8, 1, 'fio')), { kind: 'uring_enter', tsNs: 1, pid: 2, tid: 3, comm: 'fio', fd: 4, toSubmit: 8, flags: 1 });
  assert.deepEqual(one(line('mmap_backing', 1, 2, 3, 4096, 8192, 1, 61267, 'a\tfile', 'gup')), {
    kind: 'mmap_backing', tsNs: 1, pid: 2, tid: 3, comm: 'gup', addr: 4096, len: 8192, flags: 1, magic: 61267, name: 'a\tfile',
  });
  assert.deepEqual(one(line('exec', 1, 2, 3, 'sh')), { kind: 'exec', tsNs: 1, pid: 2, tid: 3, comm: 'sh' });
  assert.deepEqual(one(line('mmap_forget', 1, 2, 3, 'gup')), { kind: 'mmap_forget', tsNs: 1, pid: 2, tid: 3, comm: 'gup' });
  assert.deepEqual(one(line('uring_sqpoll', 1, 2, 3, 4, 'fio')), { kind: 'uring_sqpoll', tsNs: 1, pid: 2, tid: 3, comm: 'fio', fd: 4 });
  assert.deepEqual(one(line('fault', 1, 2, 3, 139779106430976, 7, 94823749234, 'app')), {
    kind: 'fault', tsNs: 1, pid: 2, tid: 3, comm: 'app', addr: 139779106430976, errorCode: 7, ip: 94823749234,
  });
});

test('huge_memory kinds', () => {
  assert.deepEqual(one(line('collapse_file', 1, 2, 3, '0xffff888100072bc0', 1179648, 0, 140275911491584, 1, 512, 5, '/memfd:pw (deleted)', 'khugepaged')), {
    kind: 'collapse_file', tsNs: 1, pid: 2, tid: 3, comm: 'khugepaged', mm: '0xffff888100072bc0', hpfn: 1179648, index: 0,
    addr: 140275911491584, isShmem: true, filename: '/memfd:pw (deleted)', nr: 512, result: 5,
  });
  assert.deepEqual(one(line('scan_file', 1, 2, 3, '0xffff8881', 77, 512, 0, 1, '/dev/shm/buf', 'khugepaged')), {
    kind: 'scan_file', tsNs: 1, pid: 2, tid: 3, comm: 'khugepaged', mm: '0xffff8881', pfn: 77, filename: '/dev/shm/buf', present: 512, swap: 0, result: 1,
  });
  assert.deepEqual(one(line('scan_pmd', 1, 2, 3, '0xABCdef', 77, 0, 3, 14, 0, 'app')), {
    kind: 'scan_pmd', tsNs: 1, pid: 2, tid: 3, comm: 'app', mm: '0xABCdef', pfn: 77, referenced: 0, noneOrZero: 3, status: 14, unmapped: 0,
  });
  assert.deepEqual(one(line('collapse_isolate', 1, 2, 3, 77, 0, 512, 1, 'khugepaged')), {
    kind: 'collapse_isolate', tsNs: 1, pid: 2, tid: 3, comm: 'khugepaged', pfn: 77, noneOrZero: 0, referenced: 512, status: 1,
  });
  // An empty filename is a valid string field.
  const e = one(line('scan_file', 1, 2, 3, '0x1', 77, 512, 0, 1, '', 'k'));
  assert.equal(e.kind === 'scan_file' && e.filename, '');
});

test('ksm_merge, writeback, migrate_pte', () => {
  assert.deepEqual(one(line('ksm_merge', 1, 45, 45, 1179648, 0, '0xffff888100072bc0', 0, 'ksmd')), {
    kind: 'ksm_merge', tsNs: 1, pid: 45, tid: 45, comm: 'ksmd', pfn: 1179648, ksmPfn: 0, mm: '0xffff888100072bc0', err: 0,
  });
  assert.deepEqual(one(line('writeback', 1, 88, 88, 1179648, 9, 'kswapd0')), {
    kind: 'writeback', tsNs: 1, pid: 88, tid: 88, comm: 'kswapd0', pfn: 1179648, reclaimFlags: 9,
  });
  assert.deepEqual(one(line('migrate_pte', 1, 61, 61, 'remove', 4096, 1234567890, 0, 'kcompactd0')), {
    kind: 'migrate_pte', tsNs: 1, pid: 61, tid: 61, comm: 'kcompactd0', op: 'remove', addr: 4096, pte: 1234567890, order: 0,
  });
});

test('every tracepoint kind has a reader and is exercised above', () => {
  assert.deepEqual([...TRACEPOINT_KINDS].sort(), [
    'close', 'collapse_file', 'collapse_isolate', 'exec', 'exit', 'fault', 'fork', 'ksm_merge', 'madvise', 'migrate_pte', 'mmap_backing',
    'mmap_fixed', 'mmap_forget',
    'mremap', 'munmap', 'pin_iovec', 'pin_result', 'scan_file', 'scan_pmd', 'shmdt', 'uffd_register', 'uring_enter',
    'uring_sqpoll', 'vfio_dma', 'writeback',
  ]);
});

test('comm with quotes, backslashes, tabs and non-ASCII goes through the slow path intact', () => {
  for (const comm of ['a"b', 'back\\slash', 'tab\there', 'x\\t', '\\', 'ünï', 'sp ace', 'a\\nb', '"\t\\"']) {
    const e = one(line('madvise', 1, 2, 3, 4096, 4096, 4, 0, comm));
    assert.equal(e.comm, comm);
    assert.equal(e.kind === 'madvise' && e.addr, 4096);
  }
  // A filename with a tab keeps it; comm is the last field.
  const f = one(line('collapse_file', 1, 2, 3, '0x1', 1, 0, 4096, 0, 512, 1, 'we\tird"name', 'k h'));
  assert.equal(f.kind === 'collapse_file' && f.filename, 'we\tird"name');
  assert.equal(f.comm, 'k h');
});

test('trailing printf newline and the compact JSON shape are accepted', () => {
  const e = one(rec('exit\t1\t2\t2\tbash\n'));
  assert.equal(e.comm, 'bash');
  const c = one('{"type":"printf","data":"exit\\t1\\t2\\t2\\tbash"}');
  assert.equal(c.comm, 'bash');
  // comm ending in a literal backslash + n is not a newline escape.
  const b = one(rec('exit\t1\t2\t2\tx\\n'));
  assert.equal(b.comm, 'x\\n');
});

test('lost_events: both shapes', () => {
  const { sink, got } = sinkWith();
  parseLine('{"type": "lost_events", "data": {"events": 12}}', sink);
  parseLine('{"type": "lost_events", "data": {"events": 3, "count": 3}}', sink);
  parseLine('{"type":"lost_events","data":{"count":7}}', sink);
  assert.deepEqual(got.lost, [12, 3, 7]);
  assert.deepEqual(got.malformed, []);
  parseLine('{"type": "lost_events", "data": {}}', sink);
  assert.equal(got.malformed.length, 1);
});

test('per-kind counts of a countSent program: a sent() call; other maps are messages; bad counts are malformed; lines that arrive are counted per kind', () => {
  const { sink, got } = sinkWith();
  const sent: Record<string, number>[] = [];
  const messages: string[] = [];
  const s: ParseSink = { ...sink, sent: (c) => void sent.push({ ...c }), message: (m) => void messages.push(m) };
  parseLine('{"type": "map", "data": {"@pw_sent": {"madvise": 64, "munmap": 139}}}', s);
  parseLine('{"type": "map", "data": {"@pw_sent": {}}}', s);
  parseLine('{"type": "map", "data": {"@other": {"x": 1}}}', s);
  assert.deepEqual(sent, [{ madvise: 64, munmap: 139 }, {}]);
  assert.equal(messages.length, 1);
  for (const bad of ['{"type": "map", "data": {"@pw_sent": {"madvise": -1}}}', '{"type": "map", "data": {"@pw_sent": {"madvise": 1.5}}}', '{"type": "map", "data": {"@pw_sent": {"Bad Kind": 1}}}', '{"type": "map", "data": {"@pw_sent": [1]}}']) {
    parseLine(bad, s);
  }
  assert.equal(got.malformed.length, 4);
  const before = receivedByKind();
  parseLine(rec('exit\t480000000000\t13485\t13485\tmyapp'), s);
  parseLine(rec('exit\tnot-a-number\t13485\t13485\tmyapp'), s); // malformed, but it arrived
  assert.equal((receivedByKind().exit ?? 0) - (before.exit ?? 0), 2);
});

test('ready marker, with and without timestamp', () => {
  const { sink, got } = sinkWith();
  parseLine(rec('ready\tmain'), sink);
  parseLine(rec('ready\tfaults#2\t123456789'), sink);
  parseLine(rec('ready\tkprobe/wp-page\n'), sink);
  assert.deepEqual(got.ready, ['main', 'faults#2', 'kprobe/wp-page']);
  assert.deepEqual(got.readyAt, [['faults#2', 123456789]]);
  assert.equal(got.events.length, 0);
});

test('non-event output: attached_probes, map dumps, plain text warnings, blank lines', () => {
  const { sink, got } = sinkWith();
  parseLine('{"type": "attached_probes", "data": {"probes": 27}}', sink);
  parseLine('{"type": "map", "data": {"@pw_madv": {}}}', sink);
  parseLine('WARNING: failed to set RLIMIT_MEMLOCK', sink);
  parseLine('', sink);
  assert.equal(got.messages.length, 3);
  assert.deepEqual(got.malformed, []);
  assert.equal(got.events.length, 0);
});

test('malformed input is reported, never thrown', () => {
  bad('{"type": "printf", "data": "madvise\\t1\\t2', 'truncated');
  bad('{"type": "lost_ev', 'invalid JSON');
  bad(line('madvise', 1, 2, 3, 4096, 4096, 4), 'missing field'); // no comm: the ret becomes comm → missing ret
  bad(line('madvise', 1, 2), 'missing field');
  bad(line('madvise', 1, 'x2', 3, 4096, 4096, 4, 0, 'c'), 'non-numeric field 2');
  bad(line('madvise', 1, '', 3, 4096, 4096, 4, 0, 'c'), 'empty numeric');
  bad(line('madvise', 1, '-', 3, 4096, 4096, 4, 0, 'c'), 'empty numeric');
  bad(line('madvise', '1.5', 2, 3, 4096, 4096, 4, 0, 'c'), 'non-numeric field 1');
  bad(line('madvise', '1"', 2, 3, 4096, 4096, 4, 0, 'c'), 'non-numeric'); // escape in a number: slow path, still bad
  bad(line('pin_result', 1, 2, 3, 'io_uring', 3, 0, 3, 0, 'ffff8881', 'c'), 'not a 0x pointer');
  bad(line('pin_result', 1, 2, 3, 'io_uring', 3, 0, 3, 0, '0xzz', 'c'), 'not a 0x pointer');
  bad(line('pin_iovec', 1, 2, 3, 'floppy', 3, 0, 0, 1, 1, 'c'), 'unexpected value');
  bad(line('vfio_dma', 1, 2, 3, 'mapp', 3, 0, 0, 1, 1, 0, 'c'), 'unexpected value');
  bad(line('no_such_kind', 1, 2, 3), 'unknown kind');
  bad(rec('exit'), 'no fields');
  bad('{"type": "printf", "data": 5}', 'without string data');
  bad('{"type": "printf", "data": "exit\\t1\\t2\\t2\\tbad\\escape"}', 'invalid JSON');
});

test('numeric fields: the one-pass fast reader agrees with the general reader (slow path) on every shape', () => {
  // A quote in comm sends the line down the slow path, whose fields are read by the general reader: the same
  // numbers must give the same event (but comm) or the same reason there.
  const shapes = [
    '0', '-0', '7', '-7', '00012', '123456789012345', '-123456789012345', '1234567890123456', '9007199254740993',
    '18446744073709551615', '18446744073709551616', '-18446744073709551615', '1234567890123456789012', '', '-', '--1',
    '12a', 'a', '1.5', ' 1', '+1', '0x10', '1e3', '4096\\', '4096"',
  ];
  const parse = (l: string) => {
    const { sink, got } = sinkWith();
    parseLine(l, sink);
    return { events: got.events.map((e) => ({ ...e, comm: '' })), malformed: got.malformed.map((m) => m.reason) };
  };
  for (const v of shapes) {
    for (const at of [1, 2, 4, 5, 6, 7]) {
      const f: (string | number)[] = ['madvise', 1, 2, 3, 4096, 4096, 4, 0];
      f[at] = v;
      const fast = parse(line(...f, 'c'));
      const slow = parse(line(...f, 'c"q'));
      assert.deepEqual(fast, slow, `field ${at} = ${JSON.stringify(v)}`);
    }
  }
});

test('unknown kinds are looked up in kprobeParsers with unescaped fields', () => {
  const seen: string[][] = [];
  kprobeParsers.test_kind = (fields, sink) => {
    seen.push(fields);
    sink.event({ kind: 'exit', tsNs: Number(fields[1]), pid: 1, tid: 1, comm: fields[fields.length - 1] });
  };
  kprobeParsers.throws_kind = () => {
    throw new Error('boom');
  };
  try {
    const e = one(line('test_kind', 42, 'a"b'));
    assert.equal(e.tsNs, 42);
    assert.deepEqual(seen, [['test_kind', '42', 'a"b']]);
    bad(line('throws_kind', 1), 'parser threw: boom');
  } finally {
    delete kprobeParsers.test_kind;
    delete kprobeParsers.throws_kind;
  }
});

test('the parser state does not leak between lines', () => {
  const { sink, got } = sinkWith();
  parseLine(line('madvise', 1, 'bad', 3, 4096, 4096, 4, 0, 'c'), sink);
  parseLine(line('exit', 1, 2, 2, 'ok'), sink);
  parseLine(line('exit', 1, 2, 2, 'tab\tcomm'), sink);
  parseLine(line('exit', 5, 6, 6, 'after'), sink);
  assert.equal(got.malformed.length, 1);
  assert.deepEqual(got.events.map((e) => e.comm), ['ok', 'tab\tcomm', 'after']);
  assert.equal(got.events[2].tsNs, 5);
});
