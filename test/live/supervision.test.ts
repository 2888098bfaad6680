// Supervision on the real kernel (root, real bpftrace, real C programs): each bpftrace process of `pinwatch
// record` killed mid-capture is restarted and the gap recorded, and a reproducer run afterwards is still judged;
// a pin made before pinwatch started is discovered and its divergence still raised; kill -9 of the collector
// takes its bpftrace with it, loses at most the last second and leaves a sound database whose session the
// next start marks crashed. Only this test's own pids are judged (other helpers may trace at the same time).
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import Database from 'better-sqlite3';
import { Store } from '../../collector/store/index.ts';
import { runScenario } from '../../scenarios/index.ts';
import { alive, bpftraceChildren, startHeldPin, waitFor } from '../support/held-pin.ts';
import { liveGate } from '../support/live-prereqs.ts';
import { startRecord } from '../support/record.ts';

const gate = liveGate();
const PAGE = 4096;

interface AnomalyRow {
  rule: string;
  pid: number;
  addr: number;
  confirmed: number;
  low_confidence: number;
  summary: string;
  evidence: string;
  count: number;
}

function anomalies(db: string, pid: number): AnomalyRow[] {
  const d = new Database(db, { readonly: true });
  try {
    return d.prepare(`SELECT * FROM anomalies WHERE pid = ? ORDER BY seq`).all(pid) as AnomalyRow[];
  } finally {
    d.close();
  }
}

function gaps(db: string): { process: string; cause: string; started_ns: number; ended_ns: number | null }[] {
  const d = new Database(db, { readonly: true });
  try {
    return d.prepare(`SELECT * FROM capture_gaps ORDER BY id`).all() as { process: string; cause: string; started_ns: number; ended_ns: number | null }[];
  } finally {
    d.close();
  }
}

const restarted = (stderr: string, process: string) => stderr.split('\n').some((l) => l.includes('capturing again') && l.includes(`"process":"${process}"`));

/** PF_EXITING (0x4) in /proc/PID/stat's flags: the kernel is tearing the task down. */
function exiting(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const flags = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[6]);
    return (flags & 0x4) !== 0;
  } catch {
    return true;
  }
}

describe('supervision of bpftrace (live, this kernel)', gate, () => {
  const dir = mkdtempSync(join(tmpdir(), 'pinwatch-supervision-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('kill -9 of the main bpftrace: restarted, the gap recorded; a reproducer afterwards is still judged', async () => {
    const db = join(dir, 'main.db');
    const rec = await startRecord(db);
    try {
      const main = bpftraceChildren(rec.child.pid!).find((c) => c.role === 'main');
      assert.ok(main, 'the main bpftrace runs as a child of record');
      const t0 = Date.now();
      process.kill(main.pid, 'SIGKILL');
      await waitFor(() => restarted(rec.stderr(), 'main'), 60_000, `main bpftrace restart\n${rec.stderr()}`);
      const restartMs = Date.now() - t0;
      const run = await runScenario('uring-dontneed', { env: { PINWATCH_HOLD_BEFORE_MS: '300', PINWATCH_HOLD_AFTER_MS: '1500' } });
      assert.equal(run.exitCode, 0, run.output);
      await new Promise((r) => setTimeout(r, 1000));
      assert.equal(await rec.stop('SIGINT'), 0, rec.stderr());
      const zap = Number(BigInt(run.facts.find((f) => f.zap_addr !== undefined)!.zap_addr as string));
      const got = anomalies(db, run.pid).map((a) => `${a.rule} @0x${a.addr.toString(16)}${a.confirmed ? ' confirmed' : ''}`).sort();
      assert.deepEqual(got, [`pin-pte-divergence @0x${zap.toString(16)} confirmed`, `pinned-range-zapped @0x${zap.toString(16)} confirmed`]);
      const g = gaps(db);
      assert.equal(g.length, 1);
      assert.equal(g[0].process, 'main');
      assert.equal(g[0].cause, 'bpftrace exited (SIGKILL)');
      assert.ok(g[0].ended_ns !== null && g[0].ended_ns > g[0].started_ns);
      process.stderr.write(`# main bpftrace restart: ${restartMs} ms wall, gap ${((g[0].ended_ns! - g[0].started_ns) / 1e6).toFixed(0)} ms\n`);
    } finally {
      await rec.stop('SIGINT');
    }
  });

  test('kill -9 of the fault watcher while it traces a zapped pin: restarted, gap recorded, the next divergence still confirmed', async () => {
    const db = join(dir, 'faults.db');
    const rec = await startRecord(db);
    const held = await startHeldPin();
    try {
      // An intact pin costs no fault probe (6.18 copies pinned pages at fork): the first divergence arms the
      // fault watcher for the zapped page's region.
      await new Promise((r) => setTimeout(r, 1500));
      assert.equal(bpftraceChildren(rec.child.pid!).some((c) => c.role === 'faults'), false, 'no fault watcher for an intact pin');
      const first = await held.diverge();
      await waitFor(() => bpftraceChildren(rec.child.pid!).some((c) => c.role === 'faults'), 60_000, 'the fault watcher');
      const fw = bpftraceChildren(rec.child.pid!).find((c) => c.role === 'faults')!;
      process.kill(fw.pid, 'SIGKILL');
      await waitFor(() => restarted(rec.stderr(), 'faults'), 60_000, `fault watcher restart\n${rec.stderr()}`);
      const f = await held.diverge();
      await new Promise((r) => setTimeout(r, 1500));
      await held.stop();
      await new Promise((r) => setTimeout(r, 500));
      assert.equal(await rec.stop('SIGINT'), 0, rec.stderr());
      const zaps = [Number(first.zap_addr), Number(f.zap_addr)];
      assert.notEqual(zaps[0], zaps[1], 'held-pin zaps the next page each time');
      const div = anomalies(db, held.pid).filter((a) => a.rule === 'pin-pte-divergence');
      assert.deepEqual(div.map((a) => [a.addr, a.confirmed]), zaps.map((z) => [z, 1]));
      const g = gaps(db).filter((x) => x.process === 'faults');
      assert.equal(g.length, 1);
      assert.match(g[0].cause, /bpftrace exited \(SIGKILL\)/);
      assert.ok(g[0].ended_ns !== null);
    } finally {
      await held.stop();
      await rec.stop('SIGINT');
    }
  });

  test('pinned before pinwatch started: discovered from fdinfo, its divergence raised and confirmed', async () => {
    const db = join(dir, 'discover.db');
    const held = await startHeldPin();
    const rec = await startRecord(db);
    try {
      const f = await held.diverge();
      await new Promise((r) => setTimeout(r, 1500));
      await held.stop();
      await new Promise((r) => setTimeout(r, 500));
      assert.equal(await rec.stop('SIGINT'), 0, rec.stderr());
      const d = new Database(db, { readonly: true });
      const pins = d.prepare(`SELECT * FROM pins WHERE pid = ?`).all(held.pid) as { origin: string; handle: string; pages: number; released_ns: number | null }[];
      const pm = d.prepare(`SELECT * FROM pinned_memory WHERE pid = ?`).all(held.pid) as { vm_pin_pages: number; explained_pages: number }[];
      d.close();
      assert.equal(pins.length, 1);
      assert.equal(pins[0].origin, 'discovered');
      assert.equal(pins[0].pages, 4);
      assert.ok(pins[0].released_ns !== null, 'released when the process exited (its exit is watched: seeded @pw_watch)');
      assert.deepEqual(pm.map((r) => [r.vm_pin_pages, r.explained_pages]), [[4, 4]]);
      const zap = Number(f.zap_addr);
      const got = anomalies(db, held.pid).filter((a) => a.rule === 'pin-pte-divergence' || a.rule === 'pinned-range-zapped');
      assert.deepEqual(got.map((a) => [a.rule, a.addr, a.confirmed]).sort(), [['pin-pte-divergence', zap, 1], ['pinned-range-zapped', zap, 1]]);
      const div = got.find((a) => a.rule === 'pin-pte-divergence')!;
      assert.equal(div.addr, zap);
      assert.match(div.evidence, /found already pinned at start/);
      assert.ok(zap % PAGE === 0);
    } finally {
      await held.stop();
      await rec.stop('SIGINT');
    }
  });

  test('kill -9 of the collector: its bpftrace dies too, at most the last second is lost, integrity ok, session marked crashed', async () => {
    const db = join(dir, 'crash.db');
    const rec = await startRecord(db);
    const kids = bpftraceChildren(rec.child.pid!);
    assert.ok(kids.length >= 1);
    const run = await runScenario('uring-dontneed', { env: { PINWATCH_HOLD_BEFORE_MS: '300', PINWATCH_HOLD_AFTER_MS: '1500' } });
    assert.equal(run.exitCode, 0, run.output);
    await new Promise((r) => setTimeout(r, 1000));
    rec.child.kill('SIGKILL');
    await rec.stop();
    // PDEATHSIG is delivered at once (the task is exiting within a second), but the exit itself detaches every
    // probe and waits out RCU grace periods: about 2.5 s for the full tracepoint set on this 6.18 host.
    await waitFor(() => kids.every((k) => !alive(k.pid) || exiting(k.pid)), 1000, 'bpftrace to be killed with the collector (PDEATHSIG)');
    await waitFor(() => kids.every((k) => !alive(k.pid)), 15000, 'bpftrace to finish exiting (probe detach)');
    const d = new Database(db, { readonly: true });
    assert.deepEqual(d.pragma('integrity_check'), [{ integrity_check: 'ok' }]);
    // Everything of the reproducer (done 1 s before the kill) is on disk: its pin, its madvise, its anomalies.
    const kinds = (d.prepare(`SELECT kind FROM events WHERE pid = ?`).all(run.pid) as { kind: string }[]).map((r) => r.kind);
    assert.ok(kinds.includes('pin_result') && kinds.includes('madvise') && kinds.includes('exit'), kinds.join(','));
    assert.equal((d.prepare(`SELECT count(*) AS n FROM anomalies WHERE pid = ? AND rule = 'pin-pte-divergence' AND confirmed = 1`).get(run.pid) as { n: number }).n, 1);
    d.close();
    // The next start finds the session open and its writer dead: crashed, ended at its last event.
    const s = Store.open(db);
    try {
      const sess = s.sessions()[0];
      assert.equal(sess.endReason, 'crashed');
      assert.ok(sess.endedWallMs !== null && sess.lastEventNs !== null);
      assert.match(sess.endDetail!, /last event at/);
      assert.equal(s.pins().filter((p) => p.releasedNs === null).length, 0, 'no pin of the crashed session stays live');
    } finally {
      s.close();
    }
  });
});
