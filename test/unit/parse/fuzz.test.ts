// Fuzz: >= 100,000 malformed and hostile bpftrace lines (truncated JSON, huge and fractional numbers, pids out of
// range, wrong JSON types, 10 MB lines, NUL bytes, invalid UTF-8 / lone surrogates) through the parser, the
// Collector and the SQLite store, mixed with valid lines of every tracepoint kind. Nothing throws; every line is
// accounted for exactly once (event, malformed, message or lost record); every bad line is counted as malformed;
// no stored INTEGER column holds anything but an integer. Then raw bytes through BpftraceRunner (a fake bpftrace):
// invalid UTF-8 and a 10 MB line without a newline are counted, never buffered whole.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import Database from 'better-sqlite3';
import type { ParseSink } from '../../../collector/contracts.ts';
import { parseLine } from '../../../collector/parse/index.ts';
import { Collector } from '../../../collector/pipeline.ts';
import { BpftraceRunner, MAX_LINE_BYTES } from '../../../collector/runner/index.ts';
import { Store } from '../../../collector/store/index.ts';
import { FakeMapsReader, FakePagemapReader, FakeTime } from '../../support/fakes.ts';
import { makeFakeBpftrace } from '../runner/fake-bpftrace.ts';
import { SESSION, tempDir } from '../store/helpers.ts';

/** Deterministic PRNG (mulberry32): a failure reproduces. */
function rng(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return { next, int: (n: number) => Math.floor(next() * n), pick: <T>(xs: readonly T[]) => xs[Math.floor(next() * xs.length)] };
}

const rec = (data: string) => JSON.stringify({ type: 'printf', data });
const COMMS = ['app', 'iou-server', 'q"uo\te', 'naïve', 'x\\y', 'jemalloc_bg_thd', '日本'];

/** Valid data fields of every tracepoint kind (tsNs pid tid first, comm last), with in-range random values. */
function validData(r: ReturnType<typeof rng>): string {
  const ts = 1e9 + r.int(2 ** 40);
  const pid = 1 + r.int(4_000_000);
  const addr = r.int(2 ** 47) * 4096 % 2 ** 47;
  const len = 4096 * (1 + r.int(1024));
  const comm = r.pick(COMMS);
  const h = `${ts}\t${pid}\t${pid}`;
  switch (r.int(12)) {
    case 0: return `madvise\t${h}\t${addr}\t${len}\t${r.int(26)}\t0\t${comm}`;
    case 1: return `munmap\t${h}\t${addr}\t${len}\t0\t${comm}`;
    case 2: return `pin_iovec\t${h}\tio_uring\t3\t0\t${r.int(64)}\t${addr}\t${len}\t${comm}`;
    case 3: return `pin_result\t${h}\tio_uring\t3\t0\t1\t${r.pick([0, -14])}\t0xffff888100072bc0\t${comm}`;
    case 4: return `fault\t${h}\t${addr}\t7\t94823749234\t${comm}`;
    case 5: return `mremap\t${h}\t${addr}\t${len}\t${len * 2}\t1\t0\t${addr + 2 ** 30}\t${comm}`;
    case 6: return `fork\t${h}\t${pid + 1}\t17\t${comm}`;
    case 7: return `exit\t${h}\t${comm}`;
    case 8: return `close\t${h}\t${r.int(1024)}\t${comm}`;
    case 9: return `mmap_fixed\t${h}\t${addr}\t${len}\t3\t${0x32}\t-1\t${addr}\t${comm}`;
    case 10: return `writeback\t${h}\t${r.int(2 ** 30)}\t0\t${comm}`;
    default: return `migrate_pte\t${h}\tset\t${addr}\t${r.int(2 ** 40)}\t0\t${comm}`;
  }
}

/** A line that must be counted as malformed (it starts like a record, it is not a valid one). */
function badLine(r: ReturnType<typeof rng>): string {
  const data = validData(r);
  const f = data.split('\t');
  // Fields that must be exact integers: tsNs, pid, tid, and addr/len where the kind has them first.
  const numeric = [1, 2, 3].concat(f[0] === 'madvise' || f[0] === 'munmap' ? [4, 5] : f[0] === 'fault' ? [4] : []);
  switch (r.int(12)) {
    case 0: { const l = rec(data); return l.slice(0, 1 + r.int(l.length - 2)); } // truncated
    case 1: f[r.pick(numeric)] = r.pick(['1' + '0'.repeat(25), '18446744073709551616', '9007199254740993', '99999999999999999999999999999']); return rec(f.join('\t'));
    case 2: f[r.pick(numeric)] = r.pick(['1.5', '1e3', '-', '', '0x10', 'NaN', 'Infinity', ' 7']); return rec(f.join('\t'));
    case 3: f[r.pick([2, 3])] = r.pick(['-1', '4194305', '4294967295', '2147483648']); return rec(f.join('\t')); // pid/tid out of range
    case 4: f[1] = '-' + f[1]; return rec(f.join('\t')); // negative timestamp
    case 5: return JSON.stringify({ type: 'printf', data: r.pick([5, null, true, [], { a: 1 }]) });
    case 6: return JSON.stringify({ type: 'lost_events', data: r.pick([{ events: 'x' }, { events: 1.5 }, { events: -3 }, { events: 1e300 }, null, {}]) });
    case 7: return rec(f.slice(0, 1 + r.int(f.length - 2)).join('\t')); // missing fields (a comm may hold a tab: drop two parts)
    case 8: f[r.pick(numeric)] += '\u0000'; return rec(f.join('\t')); // NUL byte in a number
    case 9: f[r.pick(numeric)] = '\ud800'; return rec(f.join('\t')); // lone surrogate (invalid UTF-16)
    case 10: return rec('no_such_kind\t' + f.slice(1).join('\t'));
    default: return '{"type": "printf", "data": "' + data.replace(/\t/g, '\\t') + '\\q"}'; // bad escape
  }
}

test('fuzz: 100,000+ hostile lines through parser, collector and store: no crash, every line accounted for, no REAL in INTEGER columns', (t) => {
  const r = rng(0x5eed);
  const lines: { text: string; bad: boolean }[] = [];
  for (let i = 0; i < 120_000; i++) {
    const bad = r.next() < 0.6;
    lines.push({ text: bad ? badLine(r) : rec(validData(r)), bad });
  }
  // 10 MB lines: a valid-looking record with a huge comm (still well-formed), and garbage.
  const huge = 'x'.repeat(10 * 1024 * 1024);
  lines.push({ text: rec(`exit\t5\t6\t6\t${huge}`), bad: false }, { text: '{"type": "printf", "data": "' + huge, bad: true }, { text: '{' + huge, bad: true });

  const db = join(tempDir(t), 'fuzz.db');
  const store = Store.open(db);
  store.startSession(SESSION);
  const time = new FakeTime();
  const collector = new Collector({ sinks: [store], pagemap: new FakePagemapReader(time), maps: new FakeMapsReader(), clock: time, scheduler: time });
  const c = { events: 0, malformed: 0, message: 0, lost: 0 };
  let last = '';
  const sink: ParseSink = {
    event: (e) => {
      c.events++;
      collector.parseSink.event(e);
    },
    lost: (n) => {
      c.lost++;
      collector.parseSink.lost(n);
    },
    ready: () => assert.fail('no ready line was fed'),
    malformed: (line, reason) => {
      c.malformed++;
      last = reason;
      collector.parseSink.malformed(line, reason);
    },
    message: () => c.message++,
  };
  let badMalformed = 0;
  for (const l of lines) {
    const before = c.malformed;
    const total = c.events + c.malformed + c.message + c.lost;
    parseLine(l.text, sink);
    assert.equal(c.events + c.malformed + c.message + c.lost, total + 1, `one outcome per line: ${l.text.slice(0, 200)}`);
    if (l.bad) {
      assert.equal(c.malformed, before + 1, `a bad line is counted as malformed: ${l.text.slice(0, 200)} (${last})`);
      badMalformed++;
    } else assert.equal(c.malformed, before, `a valid line is not malformed: ${l.text.slice(0, 200)} (${last})`);
  }
  time.advance(5000);
  collector.close();
  store.endSession();
  store.close();
  const bad = lines.filter((l) => l.bad).length;
  assert.ok(lines.length >= 100_000);
  assert.equal(badMalformed, bad);
  assert.equal(collector.counters.malformed, c.malformed);
  const d = new Database(db, { readonly: true });
  t.after(() => d.close());
  const stored = (d.prepare(`SELECT count(*) AS n FROM events WHERE kind != 'lost'`).get() as { n: number }).n;
  // Events of processes that pin nothing are counted per second and kind instead (collector/kept-events.ts).
  const counted = (d.prepare(`SELECT coalesce(sum(n), 0) AS n FROM event_counts WHERE kind != 'lost'`).get() as { n: number }).n;
  assert.equal(stored + counted, c.events, 'every parsed event is stored or counted');
  assert.equal((d.prepare(`SELECT count(*) AS n FROM event_counts WHERE typeof(sec) != 'integer' OR typeof(n) != 'integer'`).get() as { n: number }).n, 0);
  const nonInteger = d.prepare(
    `SELECT count(*) AS n FROM events WHERE typeof(ts_ns) != 'integer' OR typeof(pid) != 'integer' OR typeof(tid) != 'integer'
       OR (addr IS NOT NULL AND typeof(addr) != 'integer') OR (len IS NOT NULL AND typeof(len) != 'integer')`,
  ).get() as { n: number };
  assert.equal(nonInteger.n, 0);
  assert.equal((d.prepare(`SELECT count(*) AS n FROM sessions WHERE typeof(lost_events) != 'integer'`).get() as { n: number }).n, 0);
  assert.deepEqual(d.pragma('integrity_check'), [{ integrity_check: 'ok' }]);
  process.stderr.write(`# fuzz: ${lines.length} lines, ${c.events} events, ${c.malformed} malformed, ${c.message} messages, ${c.lost} lost records\n`);
});

test('fuzz: raw hostile bytes from bpftrace (invalid UTF-8, NULs, a 10 MB line) are counted, never buffered whole', async (t) => {
  const fake = makeFakeBpftrace();
  const file = join(tempDir(t), 'hostile.bin');
  const good = Buffer.from(rec('exit\t1\t10\t10\tok') + '\n');
  const parts: Buffer[] = [];
  for (let i = 0; i < 2000; i++) {
    parts.push(good);
    parts.push(Buffer.from([0x7b, 0xff, 0xfe, 0xc3, 0x28, 0x00, 0x0a])); // '{' + invalid UTF-8 + NUL + '\n'
    parts.push(Buffer.concat([Buffer.from('{"type": "printf", "data": "exit\\t2\\t11\\t11\\t'), Buffer.from([0xed, 0xa0, 0x80]), Buffer.from('"}\n')]));
  }
  parts.push(Buffer.from('{"type": "printf", "data": "'), Buffer.alloc(10 * 1024 * 1024, 0x41), Buffer.from('"}\n'), good);
  writeFileSync(file, Buffer.concat(parts));
  let events = 0;
  let malformed = 0;
  const runner = new BpftraceRunner({
    scripts: [{ name: 'tracepoint/x', file: '/dev/null', mode: 'tracepoint', probes: [], text: 'tracepoint:syscalls:sys_enter_getpid { }' }],
    sink: { event: () => events++, lost: () => undefined, ready: () => undefined, malformed: () => malformed++, message: () => undefined },
    bpftrace: fake.bin,
    env: { FAKE_MODE: 'file', FAKE_FILE: file },
    pdeathsig: false,
  });
  await runner.start();
  const want = 2000 * 2 + 1; // the good exits, the U+FFFD exits (a replacement char in comm is fine), the last good one
  for (let i = 0; i < 400 && runner.counters.events < want; i++) await new Promise((r) => setTimeout(r, 25));
  await runner.stop();
  assert.equal(runner.counters.events, want);
  assert.equal(events, want);
  assert.equal(malformed, 2000 + 1, 'each invalid-UTF-8 line and the over-long line');
  assert.ok(MAX_LINE_BYTES < 10 * 1024 * 1024);
});
