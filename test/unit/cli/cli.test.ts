// The pinwatch command line: bad flags give one clear line and exit 2 (spawned through bin/pinwatch.js, as users
// run it), informational commands work without root, and `record` prints ready/anomaly lines and stops cleanly
// on a signal or --duration (driven in-process with a fake session).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import { RULE_IDS } from '../../../schema/anomalies.ts';
import type { SessionInfo } from '../../../schema/session.ts';
import type { CliIo } from '../../../cli/io.ts';
import { main } from '../../../cli/main.ts';
import { record, type MakeRecordSession } from '../../../cli/record.ts';
import { Store } from '../../../collector/store/index.ts';
import { anomaly, tempDir } from '../store/helpers.ts';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const BIN = join(ROOT, 'bin/pinwatch.js');

function run(args: string[]) {
  const r = spawnSync(process.execPath, [BIN, ...args], { cwd: ROOT, encoding: 'utf8', timeout: 60_000 });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

const noStack = (s: string) => assert.doesNotMatch(s, /^\s+at .+[:(]/m, `no stack trace in:\n${s}`);

test('bad flags and values: one line on stderr, exit code 2, no stack trace', (t) => {
  const dir = tempDir(t);
  const db = join(dir, 'r.db');
  const cases: [string[], RegExp][] = [
    [['record', '--db', db, '--duration', '-1'], /--duration must be greater than 0 \(got "-1"\)/],
    [['record', '--db', db, '--duration', '0'], /--duration must be greater than 0/],
    [['record', '--db', db, '--duration', 'soon'], /--duration must be a number of seconds/],
    [['record', '--duration', '5'], /required option '--db <file>'/],
    [['record', '--db', db, '--mode', 'fentry'], /--mode must be one of auto, tracepoint, kprobe/],
    [['record', '--db', join(dir, 'missing-dir', 'x.db')], /--db directory .*missing-dir does not exist/],
    [['serve', '--port', '70000'], /--port must be an integer from 0 to 65535/],
    [['serve', '--port', '-1'], /--port must be an integer from 0 to 65535/],
    [['serve', '--port', '80x'], /--port must be an integer/],
    [['serve', '--replay', join(dir, 'nope.db')], /--replay file .*nope\.db does not exist/],
    [['serve', '--webhook', 'ftp://example.com/hook'], /--webhook must be an http:\/\/ or https:\/\/ URL/],
    [['serve', '--db', db, '--replay', BIN], /--db .* and --replay .* cannot be used together/],
    [['frobnicate'], /unknown command 'frobnicate'/],
    [['record', '--db', db, '--colour'], /unknown option '--colour'/],
    [['scenario', 'no-such-scenario'], /unknown scenario "no-such-scenario" \(choose from: .*uring-dontneed/],
    [['scenario'], /name a scenario .* or pass --list/],
    [['--log-level', 'loud', 'rules'], /--log-level must be one of/],
  ];
  for (const [args, message] of cases) {
    const r = run(args);
    assert.equal(r.code, 2, `${args.join(' ')} → exit ${r.code}\n${r.err}`);
    assert.match(r.err, message, args.join(' '));
    assert.equal(r.err.trim().split('\n').length, 1, `one line for ${args.join(' ')}:\n${r.err}`);
    assert.equal(r.out, '', 'nothing on stdout');
  }
});

test('rules lists every rule id with its severity; scenario --list lists the reproducers', () => {
  const r = run(['rules']);
  assert.equal(r.code, 0, r.err);
  for (const id of RULE_IDS) assert.match(r.out, new RegExp(`^${id}\\s+(critical|high|warning|info)\\s+\\S`, 'm'));
  const s = run(['scenario', '--list']);
  assert.equal(s.code, 0, s.err);
  assert.match(s.out, /^uring-dontneed\s+\S/m);
  assert.match(s.out, /^uring-clean\s+\S/m);
});

test('record on a file another pinwatch is writing: exit 1, what happened and what to do, no stack trace', (t) => {
  const db = join(tempDir(t), 'busy.db');
  const holder = Store.open(db);
  t.after(() => holder.close());
  const r = run(['record', '--db', db, '--duration', '1']);
  assert.equal(r.code, 1, r.err);
  // Without root/bpftrace the capture check fails first; with them the store refuses the second writer.
  assert.match(r.err, /being written by another pinwatch[\s\S]*fix: |live capture unavailable: [\s\S]*fix: /);
  noStack(r.err);
});

// ---- record, in-process with a fake session

function fakeIo() {
  const out: string[] = [];
  const err: string[] = [];
  let handler: ((sig: NodeJS.Signals) => void) | null = null;
  const io: CliIo = {
    out: (l) => out.push(l),
    err: (l) => err.push(l),
    onSignal: (h) => {
      handler = h;
      return () => {
        handler = null;
      };
    },
    exit: (code) => {
      throw new Error(`exit ${code}`);
    },
    logLevel: 'silent',
  };
  return { io, out, err, signal: (s: NodeJS.Signals) => handler?.(s), subscribed: () => handler !== null };
}

function fakeSession(log: string[]): MakeRecordSession {
  return ({ hub, db }) => ({
    start: async () => {
      log.push('start');
      const info: SessionInfo = {
        id: 1, host: 'h', kernel: '6.18', bpftraceVersion: '0.17.0', mode: 'tracepoint', startedWallMs: 1, endedWallMs: null, lostEvents: 0,
        probes: [{ script: 'tracepoint/madvise', attached: true }, { script: 'kprobe/wp-page', attached: false, reason: 'tracepoint mode' }],
      };
      setTimeout(() => hub.anomaly(anomaly(1, { addr: 0x7f00deadb000, comm: 'qemu kvm' })), 10);
      log.push(`db ${db}`);
      return info;
    },
    stop: async () => {
      log.push('stop');
    },
    counters: () => ({ events: 10, anomalies: 1, lostEvents: 0 }),
  });
}

test('record: ready line on stdout, one line per anomaly, SIGTERM stops (flushing) and exits 0', async () => {
  const f = fakeIo();
  const log: string[] = [];
  const done = record({ db: 'x.db', mode: 'auto' }, f.io, fakeSession(log));
  for (let i = 0; i < 500 && f.out.length < 2; i++) await new Promise((r) => setTimeout(r, 10));
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(f.out.length, 2, f.out.join('\n'));
  assert.match(f.out[0], /\bready\b.*1 script attached in tracepoint mode, 1 left out \(kprobe\/wp-page: tracepoint mode\)/);
  assert.match(
    f.out[1],
    /^anomaly seq=1 critical pin-pte-divergence pid=100 comm="qemu kvm" addr=0x7f00deadb000 len=4096 confirmed=yes pfn=0x1111->0x3333 pin=1 — anomaly 1$/,
  );
  assert.ok(f.subscribed());
  f.signal('SIGTERM');
  assert.equal(await done, 0);
  assert.deepEqual(log, ['start', 'db x.db', 'stop']);
  assert.match(f.err.join('\n'), /stopped \(SIGTERM\): 10 events, 1 anomalies/);
  assert.equal(f.subscribed(), false, 'signal handlers removed');
});

test('record --duration stops by itself', async () => {
  const f = fakeIo();
  const log: string[] = [];
  const t0 = Date.now();
  assert.equal(await record({ db: 'x.db', mode: 'auto', duration: 0.2 }, f.io, fakeSession(log)), 0);
  assert.ok(Date.now() - t0 >= 190);
  assert.deepEqual(log, ['start', 'db x.db', 'stop']);
  assert.match(f.err.join('\n'), /stopped \(duration\)/);
});

test('record: a start failure is one message with its fix and exit 1', async () => {
  const f = fakeIo();
  const make: MakeRecordSession = () => ({
    start: async () => {
      throw Object.assign(new Error('live capture unavailable: not running as root'), { reason: 'not running as root', fix: 'run it as root' });
    },
    stop: async () => undefined,
    counters: () => ({ events: 0, anomalies: 0, lostEvents: 0 }),
  });
  assert.equal(await record({ db: 'x.db', mode: 'auto' }, f.io, make), 1);
  assert.deepEqual(f.err, ['pinwatch record: live capture unavailable: not running as root\n  fix: run it as root']);
  assert.deepEqual(f.out, []);
});

test('main(): usage errors return 2 in-process too, help returns 0', async () => {
  const out: string[] = [];
  const err: string[] = [];
  const io = { out: (l: string) => out.push(l), err: (l: string) => err.push(l) };
  assert.equal(await main(['record', '--db', 'x.db', '--duration', '-5'], io), 2);
  assert.match(err.join('\n'), /--duration must be greater than 0/);
  assert.equal(await main(['--help'], io), 0);
  assert.match(out.join('\n'), /Usage: pinwatch/);
});

test('record: bpftrace dying mid-capture ends the recording with exit 1 (what was captured is kept)', async () => {
  const f = fakeIo();
  const log: string[] = [];
  const make: MakeRecordSession = (o) => {
    const inner = fakeSession(log)(o);
    return {
      ...inner,
      start: async () => {
        const info = await inner.start();
        setTimeout(() => o.onCaptureLost('bpftrace exited (code 1)'), 20);
        return info;
      },
    };
  };
  assert.equal(await record({ db: 'x.db', mode: 'auto' }, f.io, make), 1);
  assert.deepEqual(log, ['start', 'db x.db', 'stop']);
  assert.match(f.err.join('\n'), /stopped \(bpftrace exited\)/);
});
