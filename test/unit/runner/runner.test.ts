// Unit tests of collector/runner: program composition, BpftraceRunner's process handling (against a fake
// bpftrace), FaultWatcher's handover deduplication and region statements.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import {
  BpftraceRunner,
  FaultWatcher,
  MAX_EXACT_REGIONS,
  composeDetailed,
  composeProgram,
  faultProgramText,
  parseScript,
  pruneProbes,
  regionStatements,
  pidTest,
  MAX_CONSTANT_PIDS,
  scriptProbes,
  tracepointFields,
} from '../../../collector/runner/index.ts';
import type { ParseSink } from '../../../collector/contracts.ts';
import type { TraceEvent } from '../../../schema/events.ts';
import { makeFakeBpftrace } from './fake-bpftrace.ts';

function sink() {
  const got = { events: [] as TraceEvent[], lost: 0, ready: [] as string[], malformed: [] as string[], messages: [] as string[] };
  const s: ParseSink = {
    event: (e) => void got.events.push(e),
    lost: (n) => void (got.lost += n),
    ready: (t) => void got.ready.push(t),
    malformed: (l, r) => void got.malformed.push(`${r}: ${l}`),
    message: (m) => void got.messages.push(m),
  };
  return { s, got };
}

const A = `// a.bt — first
#define PW_X 1
tracepoint:syscalls:sys_enter_madvise /args->behavior == 4/ { @pw_a[tid] = args->start; }
tracepoint:syscalls:sys_exit_madvise, tracepoint:syscalls:sys_exit_munmap
/@pw_a[tid]/
{
  printf("x\\t%d {not a brace} // not a comment", args->ret); // comment with }
  delete(@pw_a[tid]);
}
BEGIN { @pw_b[0] = 1; }
END { printf("bye"); }
`;
const B = `#define PW_X 1
struct pw_s { int a; };
BEGIN { @pw_c = 2; }
tracepoint:sched:sched_process_exit /pid == tid/ { printf("exit"); }
`;

test('parseScript: blocks, attach lists, definitions; probes and fields read from the text', () => {
  const p = parseScript(A);
  assert.deepEqual(p.definitions, ['#define PW_X 1']);
  assert.deepEqual(p.blocks.map((b) => b.attach), [
    ['tracepoint:syscalls:sys_enter_madvise'],
    ['tracepoint:syscalls:sys_exit_madvise', 'tracepoint:syscalls:sys_exit_munmap'],
    ['BEGIN'],
    ['END'],
  ]);
  assert.deepEqual(scriptProbes(A), ['tracepoint:syscalls:sys_enter_madvise', 'tracepoint:syscalls:sys_exit_madvise', 'tracepoint:syscalls:sys_exit_munmap']);
  assert.deepEqual(Object.fromEntries(tracepointFields(A)), {
    'tracepoint:syscalls:sys_enter_madvise': ['behavior', 'start'],
    'tracepoint:syscalls:sys_exit_madvise': ['ret'],
    'tracepoint:syscalls:sys_exit_munmap': ['ret'],
  });
  assert.deepEqual(parseScript(B).definitions, ['#define PW_X 1', 'struct pw_s { int a; };']);
});

test('composeProgram: one BEGIN, hoisted definitions, sentinel last, END clears every map', () => {
  const c = composeDetailed(
    [
      { name: 'tracepoint/a', file: 'a.bt', mode: 'tracepoint', probes: [], text: A },
      { name: 'tracepoint/b', file: 'b.bt', mode: 'tracepoint', probes: [], text: B },
    ],
    { tag: 'main', sentinelPid: 1073762391 },
  );
  const t = c.text;
  assert.equal(t.match(/^BEGIN$/gm)?.length, 1);
  assert.equal(t.match(/^END$/gm)?.length, 1);
  assert.equal(t.match(/#define PW_X 1/g)?.length, 1);
  assert.ok(t.indexOf('struct pw_s') < t.indexOf('tracepoint:'), 'definitions before probes');
  assert.ok(t.includes('@pw_b[0] = 1;') && t.includes('@pw_c = 2;'), 'BEGIN bodies merged');
  const sentinel = t.indexOf('tracepoint:syscalls:sys_enter_kill');
  assert.ok(sentinel > t.lastIndexOf('sched_process_exit'), 'sentinel after every script probe');
  assert.ok(t.slice(sentinel).includes('args->pid == 1073762391'));
  assert.ok(t.includes('printf("ready\\t%s\\t%llu", "main", nsecs)'));
  for (const m of ['pw_a', 'pw_b', 'pw_c', 'pw_sentinel']) assert.ok(t.includes(`clear(@${m});`), m);
  assert.ok(t.includes('printf("bye")'), 'END bodies kept');
  assert.ok(!t.includes('kprobe:'), 'no kprobe sentinel without kprobes');
  assert.deepEqual(c.lineMap.map((m) => m.script), ['tracepoint/a', 'tracepoint/b']);
  assert.throws(() => composeProgram([], { tag: 'bad tag"' }), /plain word/);
});

test('countSent: each event printf is counted in the kernel per kind, printed every second and at END', () => {
  const scripts = [
    { name: 'tracepoint/a', file: 'a.bt', mode: 'tracepoint' as const, probes: [], text: 'tracepoint:x:y\n{\n  if (1) {\n    printf("madvise\\t%llu", nsecs);\n  }\n  printf("munmap\\t%llu\\t%d", nsecs, pid);\n}\n' },
  ];
  const off = composeProgram(scripts);
  assert.ok(!off.includes('@pw_sent[') && !off.includes('print(@pw_sent)') && !off.includes('interval:'), 'off by default');
  const on = composeProgram(scripts, { countSent: true });
  assert.match(on, /@pw_sent\["madvise"\] = count\(\); printf\("madvise\\t%llu", nsecs\);/);
  assert.match(on, /@pw_sent\["munmap"\] = count\(\); printf\("munmap\\t/);
  assert.match(on, /interval:s:1\n\{\n  print\(@pw_sent\);\n\}/);
  const end = on.slice(on.lastIndexOf('END\n{'));
  assert.ok(end.indexOf('print(@pw_sent);') >= 0 && end.indexOf('print(@pw_sent);') < end.indexOf('clear(@pw_sent);'), 'the final counts print before the maps are cleared');
  assert.ok(!/@pw_sent\["ready"\]/.test(on), 'the ready sentinel is not an event');
});

test('pruneProbes: drops missing attach points, and blocks left with none', () => {
  const src = 'a:x:y, b:x:y /1/ { @pw_1 = 1; }\nc:x:y\n{\n  @pw_2 = 1;\n}\nd:x:y { @pw_3 = 1; }\n';
  assert.equal(pruneProbes(src, new Set(['b:x:y', 'c:x:y'])), 'a:x:y\n/1/ { @pw_1 = 1; }\n\nd:x:y { @pw_3 = 1; }\n');
  assert.equal(pruneProbes(src, new Set()), src);
});

test('composeProgram: a kprobe script gets the reverse-order sentinel gate', () => {
  const t = composeProgram([{ name: 'kprobe/x', file: 'x.bt', mode: 'kprobe', probes: [], text: 'kprobe:do_wp_page { @pw_k[tid] = 1; }\n' }]);
  const ks = t.indexOf('kprobe:__');
  assert.ok(ks >= 0 && ks < t.indexOf('kprobe:do_wp_page'), 'kprobe sentinel declared before the kprobe (attached last)');
  assert.ok(t.includes('@pw_sentinel_k == 1'));
});

test('every bpf/tracepoint script composes and documents what, why and its line', () => {
  const dir = new URL('../../../bpf/tracepoint/', import.meta.url).pathname;
  const files = readdirSync(dir).filter((f) => f.endsWith('.bt'));
  assert.ok(files.length >= 15);
  const t = composeProgram(files.map((f) => ({ name: `tracepoint/${f}`, file: dir + f, mode: 'tracepoint' as const, probes: [] })));
  assert.equal(t.match(/^BEGIN$/gm)?.length, 1, 'only faults.bt has a BEGIN');
  for (const f of files) {
    const header = readFileSync(dir + f, 'utf8').split('\n').filter((l) => l.startsWith('//')).join('\n');
    assert.match(header, /^\/\/ [\w.]+\.bt — /, `${f}: first line says what it traces`);
    assert.match(header, /\n\/\/ Why:/, `${f} says why`);
    assert.match(header, /\n\/\/ Line/, `${f} documents its line`);
    assert.match(header, /\n\/\/ Example/, `${f} has an example line`);
  }
});

test('BpftraceRunner: ready resolves start, split chunks rejoined, stop drains after SIGINT, counters', async () => {
  const { bin } = makeFakeBpftrace();
  const { s, got } = sink();
  const errs: string[] = [];
  let exit: [number | null, string | null] | null = null;
  const r = new BpftraceRunner({
    scripts: [{ name: 'tracepoint/x', file: 'x.bt', mode: 'tracepoint', probes: [], text: 'tracepoint:sched:sched_process_exit { @pw_q = 1; }\n' }],
    sink: s,
    bpftrace: bin,
    env: { FAKE_MODE: 'basic' },
    onStderr: (l) => errs.push(l),
    onExit: (c, sig) => (exit = [c, sig]),
  });
  await r.start();
  assert.ok(r.readyTsNs! > 0);
  assert.ok(r.startMs! >= 0);
  assert.deepEqual(got.ready, ['main']);
  await new Promise((res) => setTimeout(res, 150)); // the split record's second half
  assert.deepEqual(got.events.map((e) => e.comm), ['before', 'split']);
  assert.ok(r.memlockWarning, 'RLIMIT_MEMLOCK warning recorded');
  assert.equal(errs.length, 1);
  await r.stop();
  assert.deepEqual(got.events.map((e) => e.comm), ['before', 'split', 'drained', 'last-no-newline']);
  assert.equal(got.lost, 5);
  assert.deepEqual(got.messages, ['WARNING: plain text']);
  assert.deepEqual(r.counters, { lines: 7, events: 4, malformed: 0, lost: 5 });
  assert.deepEqual(exit, [0, null]);
  await r.stop(); // idempotent
});

test('BpftraceRunner: exit before ready rejects with the probe, the script and stderr', async () => {
  const { bin } = makeFakeBpftrace();
  const r = new BpftraceRunner({
    scripts: [{ name: 'tracepoint/nope', file: 'nope.bt', mode: 'tracepoint', probes: [], text: 'tracepoint:pinwatch_none:no_such_event { @pw_n = 1; }\n' }],
    sink: sink().s,
    bpftrace: bin,
    env: { FAKE_MODE: 'fail' },
  });
  await assert.rejects(r.start(), (e: Error) => {
    assert.match(e.message, /exited \(code 1\) before its probes were attached/);
    assert.match(e.message, /probe pinwatch_none:no_such_event/);
    assert.match(e.message, /script tracepoint\/nope/);
    assert.doesNotMatch(e.message, /RLIMIT_MEMLOCK/);
    return true;
  });
});

test('BpftraceRunner: missing binary rejects; stop() SIGKILLs a process that ignores SIGINT', async () => {
  const r0 = new BpftraceRunner({ scripts: [], sink: sink().s, bpftrace: '/nonexistent/bpftrace' });
  await assert.rejects(r0.start(), /nonexistent\/bpftrace/);
  const { bin } = makeFakeBpftrace();
  let sig: string | null = null;
  const r = new BpftraceRunner({ scripts: [], sink: sink().s, bpftrace: bin, env: { FAKE_MODE: 'stubborn' }, stopTimeoutMs: 300, onExit: (_c, s) => (sig = s) });
  await r.start();
  const t0 = Date.now();
  await r.stop();
  assert.equal(sig, 'SIGKILL');
  assert.ok(Date.now() - t0 >= 250);
});

test('regionStatements: exact 2 MiB keys, 1 GiB keys above the cap; template substitution', () => {
  assert.equal(regionStatements([{ pid: 7, region: 100 }, { pid: 7, region: 101 }, { pid: 8, region: 5 }]),
    ['  @pw_fpid[8] = 1;', '  @pw_fpid[7] = 1;', '  @pw_r21[7, 100] = 1;', '  @pw_r21[7, 101] = 1;', '  @pw_r21[8, 5] = 1;'].join('\n'));
  const many = Array.from({ length: MAX_EXACT_REGIONS + 1 }, (_, i) => ({ pid: 9, region: 1024 + i }));
  const s = regionStatements(many);
  assert.ok(!s.includes('@pw_r21'));
  assert.deepEqual(s.split('\n'), ['  @pw_fpid[9] = 1;', '  @pw_r30[9, 2] = 1;', '  @pw_r30[9, 3] = 1;', '  @pw_r30[9, 4] = 1;']);
  const t = faultProgramText([{ pid: 7, region: 100 }]);
  assert.ok(t.includes('@pw_r21[7, 100] = 1;'));
  assert.ok(!/^\s*\/\/ @@PINWATCH_REGIONS@@\s*$/m.test(t));
  assert.ok(t.includes('tracepoint:exceptions:page_fault_user'));
  // few pids: constant compares instead of the per-fault @pw_fpid lookup; many: the map
  assert.match(faultProgramText([{ pid: 8, region: 5 }, { pid: 7, region: 100 }]), /^\/\(pid == 7 \|\| pid == 8\) && \(@pw_r21\[pid/m);
  const nine = Array.from({ length: MAX_CONSTANT_PIDS + 1 }, (_, i) => ({ pid: 100 + i, region: 1 }));
  assert.match(faultProgramText(nine), /^\/@pw_fpid\[pid\] && /m);
  assert.equal(pidTest([]), '@pw_fpid[pid]');
});

test('FaultWatcher: handover delivers every fault once (cutover at the new process ready ts), drops outside regions', async () => {
  const { bin, dir } = makeFakeBpftrace();
  process.env.FAKE_MODE = 'faults';
  process.env.FAKE_DIR = dir;
  const { s, got } = sink();
  const w = new FaultWatcher({ sink: s, bpftrace: bin, debounceMs: 10 });
  try {
    w.setRegions([{ pid: 4242, region: 100 }]);
    w.setRegions([{ pid: 4242, region: 100 }]); // debounced: one start
    await w.settled();
    assert.equal(w.restarts, 1);
    await new Promise((r) => setTimeout(r, 100));
    w.setRegions([{ pid: 4242, region: 100 }, { pid: 4242, region: 102 }]);
    await w.settled();
    assert.equal(w.restarts, 2);
    await new Promise((r) => setTimeout(r, 300));
    await w.stop();
    assert.equal(w.running, false);
    const R = 2 ** 21 * 100;
    const pages = got.events.map((e) => (e.kind === 'fault' ? (e.addr - R) / 4096 : -1)).sort((a, b) => a - b);
    // X=1, Z=2, Y=3, V=6, S=8 — each exactly once; W (late old copy), Z2 (early new copy), the S copy and
    // the fault outside the exact regions are dropped.
    assert.deepEqual(pages, [1, 2, 3, 6, 8]);
    assert.ok(w.duplicates >= 3, `duplicates counted: ${w.duplicates}`);
    assert.deepEqual(got.ready, [], 'the fault processes\' ready markers stay inside the watcher');
  } finally {
    delete process.env.FAKE_MODE;
    delete process.env.FAKE_DIR;
    await w.stop();
  }
});

test('FaultWatcher: an empty region set never starts a process', async () => {
  const w = new FaultWatcher({ sink: sink().s, bpftrace: '/nonexistent/bpftrace', debounceMs: 5 });
  w.setRegions([]);
  await w.settled();
  assert.equal(w.running, false);
  assert.equal(w.error, null);
  await w.stop();
});
