// Lost events per kind on the real kernel: a program composed with countSent (each event printf counted in the
// kernel per kind, printed once a second) and a perf buffer of one page per CPU, flooded by a burst of getppid
// calls printed as `exit` lines and `close` lines. bpftrace 0.17 reports only a total of dropped records, and late
// or never (see below); the per-kind loss (collector/capture-loss.ts) must be exact: arrived + lost = calls, per
// kind, and cover whatever total bpftrace did report.
// Needs root + bpftrace (skips otherwise; fails in CI). Run: node --import tsx --test test/live/bpf/lost-by-kind.test.ts
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { CaptureLoss } from '../../../collector/capture-loss.ts';
import { receivedByKind } from '../../../collector/parse/index.ts';
import { BpftraceRunner } from '../../../collector/runner/index.ts';
import { gate, recordingSink } from './helpers.ts';

const { skip, ciFailure } = gate();
if (ciFailure) test('live bpf prerequisites', () => assert.fail(ciFailure));

const SCRIPT = `
tracepoint:syscalls:sys_enter_getppid
/comm == "pw-lost-burst"/
{
  printf("exit\\t%llu\\t%d\\t%d\\t%s", nsecs, pid, tid, comm);
  printf("close\\t%llu\\t%d\\t%d\\t%lld\\t%s", nsecs, pid, tid, (int64)7, comm);
}
`;

test('a flooded one-page perf buffer: the per-kind loss accounts for what bpftrace reports lost', { skip: skip || !!ciFailure }, async () => {
  const rec = recordingSink();
  const loss = new CaptureLoss(receivedByKind);
  let lost = 0;
  let prints = 0;
  const runner = new BpftraceRunner({
    scripts: [{ name: 'tracepoint/burst', file: '', mode: 'tracepoint', probes: ['tracepoint:syscalls:sys_enter_getppid'], text: SCRIPT }],
    sink: {
      ...rec,
      lost: (n) => void (lost += n),
      sent: (counts) => {
        prints++;
        loss.counted(counts);
      },
    },
    countSent: true,
    perfRbPages: 1,
  });
  loss.restart();
  await runner.start();
  try {
    // 200,000 getppid calls in a tight loop, as one process named pw-lost-burst: far more than 4 KiB per CPU holds.
    const burst = spawnSync('python3', ['-c', 'import ctypes,os\nlibc=ctypes.CDLL(None)\nlibc.prctl(15,b"pw-lost-burst",0,0,0)\nfor _ in range(200000): os.getppid()'], { encoding: 'utf8' });
    assert.equal(burst.status, 0, burst.stderr);
    await new Promise((r) => setTimeout(r, 2500)); // two more prints: the burst's counts are judged
  } finally {
    await runner.stop(); // END prints the final counts
  }
  loss.settle();
  const byKind = loss.byKind();
  const perKind = loss.total();
  const got = rec.events.filter((e) => e.comm === 'pw-lost-burst');
  process.stderr.write(`# lost per kind ${JSON.stringify(byKind)} (sum ${perKind}); bpftrace lost ${lost}; arrived ${got.length}; ${prints} count prints\n`);
  assert.ok(perKind > 1000, `the burst overflowed the buffer (lost per kind ${perKind})`);
  // bpftrace's total can only fall short: the kernel writes a buffer's lost record with that CPU's NEXT sample, so
  // a burst on a CPU nothing else then writes to is never reported (seen in CI: 0 reported of 399,662). Whatever it
  // did report is covered by the per-kind count, less its own dropped map prints (at most one per print).
  assert.ok(lost <= perKind + prints + 2, `bpftrace's ${lost} within the per-kind ${perKind} (+ ${prints} prints)`);
  // Both kinds were printed together: each lost a share, and what arrived plus what was lost is every call.
  assert.ok((byKind.exit ?? 0) > 0 && (byKind.close ?? 0) > 0, JSON.stringify(byKind));
  const arrived = (kind: string) => got.filter((e) => e.kind === kind).length;
  assert.equal(arrived('exit') + byKind.exit!, 200_000);
  assert.equal(arrived('close') + byKind.close!, 200_000);
});
