// Programs nobody on this team wrote, all correct on a kernel that passes its own tests, run under
// `pinwatch record` (real bpftrace, root): the kernel's mm/cow.c and mm/gup_longterm.c (built from Debian's
// linux-source, support/selftests.ts) and fio with io_uring fixed buffers in every --mem mode, read and write.
// A correct program must raise no high or critical anomaly; every lower-severity one left is listed below
// with why it is right. One recording for the whole suite; each run's processes carry a unique comm (a named
// copy of the binary), so other processes on the host (other test runs) are never judged.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import Database from 'better-sqlite3';
import { liveGate } from '../support/live-prereqs.ts';
import { startRecord, type RecordHandle } from '../support/record.ts';
import { buildSelftests, namedCopy, selftestsMissing } from './support/selftests.ts';

/** Live prerequisites plus the foreign programs' packages; under CI=true a missing one fails. */
function foreignGate(): { skip: string | false } {
  const live = liveGate();
  if (live.skip) return live;
  const missing = selftestsMissing() ?? (spawnSync('fio', ['--version']).status === 0 ? null : 'fio missing (apt-get install fio)');
  if (missing && process.env.CI === 'true') throw new Error(`CI=true and a foreign-workload prerequisite is missing: ${missing}`);
  return { skip: missing ?? false };
}

const gate = foreignGate();
const HUGEPAGES = 32; // 64 MiB of 2 MiB hugetlb pages: cow.c's hugetlb cases and fio --mem=mmaphuge
const IODEPTH = 8; // fio registers one fixed buffer per queue slot
const FIO_MODES = ['malloc', 'shm', 'mmap', 'mmaphuge'] as const;
/** Distinct 4-letter codes: comm is at most 15 characters ("pwf-hugew-1a2b"). */
const FIO_CODE: Record<(typeof FIO_MODES)[number], string> = { malloc: 'mall', shm: 'shm', mmap: 'mmap', mmaphuge: 'huge' };

interface Row {
  rule: string;
  severity: string;
  pid: number;
  addr: number;
  summary: string;
  comm: string;
  /** Times the same finding was made (engine: same rule, pin, process, address: one row, counted). */
  count: number;
}

interface Run {
  comm: string;
  status: number | null;
  output: string;
}

function run(comm: string, binary: string, args: string[], cwd: string): Run {
  const r = spawnSync(namedCopy(binary, comm), args, { cwd, encoding: 'utf8', timeout: 120_000 });
  return { comm, status: r.status, output: `${r.stdout}\n${r.stderr}` };
}

/** "# Totals: pass:285 fail:0 xfail:4 xpass:0 skip:472 error:0" of a kselftest run. */
function totals(output: string): Record<string, number> {
  const m = /# Totals: (.*)/.exec(output);
  assert.ok(m, `no kselftest totals in:\n${output.slice(-2000)}`);
  return Object.fromEntries(m[1].split(' ').map((kv) => kv.split(':')).map(([k, v]) => [k, Number(v)]));
}

describe('foreign workloads under pinwatch record: no false alarms (live, this kernel)', gate, () => {
  const dir = mkdtempSync(join(tmpdir(), 'pinwatch-foreign-'));
  // gup_longterm's "local tmpfile" must be on a real disk filesystem (the refusals it checks): /var/tmp.
  const work = mkdtempSync('/var/tmp/pinwatch-foreign-');
  const db = join(dir, 'record.db');
  const runs = new Map<string, Run>();
  const tag = process.pid.toString(36).slice(-4);
  let rec: RecordHandle;
  let hugepagesBefore = '';
  let rows: Row[] = [];

  before(async () => {
    const t0 = Date.now();
    const selftests = buildSelftests();
    hugepagesBefore = readFileSync('/proc/sys/vm/nr_hugepages', 'utf8').trim();
    writeFileSync('/proc/sys/vm/nr_hugepages', String(Number(hugepagesBefore) + HUGEPAGES));
    rec = await startRecord(db);
    runs.set('cow', run(`pwf-cow-${tag}`, selftests.cow, [], work));
    runs.set('gup_longterm', run(`pwf-gup-${tag}`, selftests.gupLongterm, [], work));
    for (const mem of FIO_MODES) {
      for (const rw of ['read', 'write']) {
        const name = `fio-${mem}-${rw}`;
        runs.set(name, run(`pwf-${FIO_CODE[mem]}${rw[0]}-${tag}`, '/usr/bin/fio', [
          '--name=pw', '--ioengine=io_uring', '--fixedbufs', `--mem=${mem}`, `--rw=${rw}`, '--bs=64k', '--size=16M',
          `--iodepth=${IODEPTH}`, '--direct=1', `--filename=${join(work, 'fio.dat')}`,
        ], work));
      }
    }
    // The verifier's last pass and the teardown windows (200 ms of stream time) land before stopping.
    await new Promise((r) => setTimeout(r, 1500));
    const code = await rec.stop('SIGINT');
    assert.equal(code, 0, `record must exit 0 on SIGINT\n${rec.stderr()}`);
    const d = new Database(db, { readonly: true });
    try {
      rows = d.prepare('SELECT rule, severity, pid, addr, summary, comm, count FROM anomalies WHERE comm LIKE ?').all(`pwf-%-${tag}`) as Row[];
    } finally {
      d.close();
    }
    process.stderr.write(`foreign workloads: ${Math.round((Date.now() - t0) / 1000)} s (build, record, ${runs.size} runs)\n`);
  });
  after(() => {
    if (hugepagesBefore !== '') writeFileSync('/proc/sys/vm/nr_hugepages', hugepagesBefore);
    rmSync(dir, { recursive: true, force: true });
    rmSync(work, { recursive: true, force: true });
  });

  const of = (name: string) => {
    const comm = runs.get(name)!.comm;
    return rows.filter((r) => r.comm === comm);
  };
  const highOrCritical = (rs: Row[]) => rs.filter((r) => r.severity === 'high' || r.severity === 'critical').map((r) => `${r.rule} ${r.severity}: ${r.summary}`);

  test('mm/cow.c: passes its own tests; nothing high or critical; only the fork-with-pins it asks for (and khugepaged refusals its pins cause)', () => {
    const r = runs.get('cow')!;
    assert.equal(r.status, 0, r.output.slice(-3000));
    assert.equal(totals(r.output).fail, 0);
    const rs = of('cow');
    assert.deepEqual(highOrCritical(rs), []);
    for (const a of rs) {
      // cow.c pins PTE-mapped THPs as io_uring fixed buffers (THP_RUN_PTE). When khugepaged's scan (every 10 s)
      // meets one while it is registered, the kernel refuses the collapse for the pin's extra reference
      // (SCAN_PAGE_COUNT): a true observation, info only, and it must name the ring slot that holds the page.
      if (a.rule === 'collapse-blocked-by-pin') {
        assert.equal(a.severity, 'info', a.summary);
        assert.match(a.summary, /refused \(not_suitable_page_count\): ring fd \d+ slot \d+ pins/);
        continue;
      }
      // cow.c forks while its buffers are pinned on purpose (that is what it tests):
      //  - io_uring fixed buffers: warning (correct since 5.9, costs a copy; a hazard on older kernels);
      //  - vmspliced pages: info (harmless since 5.19, CVE-2020-29374 before).
      assert.equal(a.rule, 'fork-with-pins', `${a.rule} ${a.severity}: ${a.summary}`);
      if (a.severity === 'warning') assert.match(a.summary, /ring fd \d+ slot/);
      else assert.equal(a.severity, 'info', a.summary);
    }
  });

  test('mm/gup_longterm.c: passes; exactly its refused ext4 MAP_SHARED registrations as longterm-pin-file-backed (info)', () => {
    const r = runs.get('gup_longterm')!;
    assert.equal(r.status, 0, r.output.slice(-3000));
    assert.equal(totals(r.output).fail, 0);
    // io_uring on a MAP_SHARED file, refused by the kernel (ext4, not shmem/hugetlb): "Should have failed", or a
    // SKIP when the test reads a stale errno (liburing returns -EFAULT without setting errno).
    const refused = /# \[RUN\] io_uring fixed buffer with MAP_SHARED file mapping[^\n]*\nok \d+ (Should have failed|# SKIP io_uring_register_buffers\(\) failed)/g;
    const refusals = (r.output.match(refused) ?? []).length;
    assert.ok(refusals > 0, 'the run refused at least one registration (tmpfile on a disk filesystem)');
    const rs = of('gup_longterm');
    assert.deepEqual(highOrCritical(rs), []);
    // Refusals at the same address (the test maps its tmpfile again where the last one was) are one finding, counted.
    assert.deepEqual(rs.flatMap((a) => Array(a.count).fill(`${a.rule} ${a.severity}`)), Array(refusals).fill('longterm-pin-file-backed info'));
    for (const a of rs) assert.match(a.summary, /refused \(EFAULT\)/);
  });

  for (const mem of FIO_MODES) {
    for (const rw of ['read', 'write']) {
      test(`fio io_uring --fixedbufs --mem=${mem} --rw=${rw}: nothing high; its teardown (unmap, then exit) is info`, () => {
        const r = runs.get(`fio-${mem}-${rw}`)!;
        assert.equal(r.status, 0, r.output.slice(-3000));
        assert.match(r.output, /err= 0/);
        const rs = of(`fio-${mem}-${rw}`);
        assert.deepEqual(highOrCritical(rs), []);
        // fio frees (munmap / shmdt) its buffers and then exits, with no I/O in between: one teardown note per
        // registered buffer, info, saying why.
        assert.ok(rs.length <= IODEPTH, rs.map((a) => a.summary).join('\n'));
        for (const a of rs) {
          assert.equal(`${a.rule} ${a.severity}`, 'pinned-range-zapped info', a.summary);
          assert.match(a.summary, /teardown: .* with no I\/O submitted on ring fd \d+ in between/);
        }
      });
    }
  }
});
