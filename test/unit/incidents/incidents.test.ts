// Incidents: the anomalies one event causes on one pin become one incident (highest severity, a title that says
// what happened, its findings underneath), stored in SQLite with links to its anomalies; files written before
// incidents were stored derive the same incidents from their anomalies.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import Database from 'better-sqlite3';
import type { SequencedEvent } from '../../../schema/events.ts';
import type { Incident, IncidentChange } from '../../../schema/incidents.ts';
import { MADV } from '../../../schema/kernel.ts';
import { SCHEMA_VERSION } from '../../../schema/tables.ts';
import { Store } from '../../../collector/store/index.ts';
import { deriveIncidents } from '../../../collector/store/incidents.ts';
import { RecentEvents } from '../../../collector/incidents/recent-events.ts';
import { BUF, Harness, PAGE } from '../pipeline/harness.ts';
import { SESSION, tempDir } from '../store/helpers.ts';

class IncidentLog {
  readonly changes: [IncidentChange, Incident][] = [];
  latest(): Incident[] {
    const byId = new Map<number, Incident>();
    for (const [, i] of this.changes) byId.set(i.id, i);
    return [...byId.values()];
  }
}

function harness(): { h: Harness; log: IncidentLog } {
  const h = new Harness().anonBuffer(100, BUF, 4, 0x1000);
  const log = new IncidentLog();
  (h.sink as unknown as { incident: (i: Incident, c: IncidentChange) => void }).incident = (i, c) => log.changes.push([c, i]);
  return { h, log };
}

/** The hazard of the uring-map-fixed scenario: mmap(MAP_FIXED) over the 2nd pinned page, then unregister and exit. */
function mapFixedOverPinnedPage(h: Harness): void {
  h.registerRing(100, 5, [[BUF, 4 * PAGE]]);
  h.tick(300);
  h.pagemap.map(100, BUF + PAGE, 0x9000, 1); // the new anonymous page MAP_FIXED put there
  h.feed(h.ev.mmapFixed(100, BUF + PAGE, PAGE));
  h.tick(1500);
  h.feed(h.ev.pinResult(100, 5, 0, 0, { opcode: 1 }), h.ev.exit(100));
  h.c.verifyNow();
}

describe('incidents', () => {
  test('MAP_FIXED over a pinned page: pinned-range-zapped + pin-leak + pin-pte-divergence are one critical incident', () => {
    const { h, log } = harness();
    mapFixedOverPinnedPage(h);
    assert.deepEqual(h.sink.anomalies.map((a) => a.rule).sort(), ['pin-leak', 'pin-pte-divergence', 'pinned-range-zapped']);
    const incidents = log.latest();
    assert.equal(incidents.length, 1);
    const i = incidents[0];
    assert.equal(i.severity, 'critical');
    assert.equal(i.title, 'MAP_FIXED replaced 1 pinned page of io_uring buffer 0 (ring fd 5) — device writes are lost: confirmed');
    assert.equal(i.cause, 'MAP_FIXED replaced');
    assert.equal(h.sink.events.find((e) => e.seq === i.causeSeq)?.kind, 'mmap_fixed');
    assert.deepEqual(i.rules, ['pin-pte-divergence', 'pinned-range-zapped', 'pin-leak']);
    assert.deepEqual(i.anomalySeqs, h.sink.anomalies.map((a) => a.seq));
    assert.equal(i.pinId, h.sink.anomalies[0].pinId);
    assert.equal(i.pid, 100);
    assert.equal(i.confirmed, true);
    // opened by the pagemap confirmation (critical); the zap itself is judged only when the unregister shows it
    // was no teardown (released 1.5 s later, past the teardown window), then the leak joins; closed by the unregister
    assert.deepEqual(log.changes.map(([c, x]) => `${c} ${x.severity}`), ['opened critical', 'updated critical', 'updated critical', 'closed critical']);
    assert.notEqual(i.closedWallMs, null);
    assert.equal(h.c.counters.incidents, 1);
  });

  test('two events on one pin, and one event on two pins, are separate incidents', () => {
    const { h, log } = harness();
    h.anonBuffer(100, BUF + 8 * PAGE, 2, 0x2000);
    h.registerRing(100, 5, [[BUF, 4 * PAGE], [BUF + 8 * PAGE, 2 * PAGE]]);
    h.tick(300);
    h.pagemap.unmap(100, BUF);
    h.feed(h.ev.madvise(100, BUF, PAGE, MADV.DONTNEED));
    h.tick(100);
    h.pagemap.unmap(100, BUF + 2 * PAGE);
    h.feed(h.ev.madvise(100, BUF + 2 * PAGE, PAGE, MADV.DONTNEED));
    h.tick(100);
    h.feed(h.ev.munmap(100, BUF + 3 * PAGE, 7 * PAGE)); // the last page of buffer 0 and all of buffer 1
    h.pastTeardown(); // zaps of io_uring buffers wait for teardown evidence: still pinned, each is a hazard
    const titles = log.latest().map((i) => i.title.replace(/ — .*/, ''));
    assert.deepEqual(titles, [
      'MADV_DONTNEED zapped 1 pinned page of io_uring buffer 0 (ring fd 5)',
      'MADV_DONTNEED zapped 1 pinned page of io_uring buffer 0 (ring fd 5)',
      'munmap removed 1 pinned page of io_uring buffer 0 (ring fd 5)',
      'munmap removed 2 pinned pages of io_uring buffer 1 (ring fd 5)',
    ]);
    for (const i of log.latest()) assert.ok(i.anomalySeqs.length >= 1);
    const all = log.latest().flatMap((i) => i.anomalySeqs).sort((a, b) => a - b);
    assert.deepEqual(all, h.sink.anomalies.map((a) => a.seq), 'every anomaly belongs to exactly one incident');
  });

  test('the zap, the refault it caused and a divergence found later by a periodic check are one incident', () => {
    const { h, log } = harness();
    h.registerRing(100, 5, [[BUF, 4 * PAGE]]);
    h.tick(300);
    h.pagemap.unmap(100, BUF + PAGE);
    h.feed(h.ev.madvise(100, BUF + PAGE, PAGE, MADV.DONTNEED));
    h.tick(5);
    h.pagemap.map(100, BUF + PAGE, 0x9000, 1); // the program touches the page again: a new page
    h.feed(h.ev.fault(100, BUF + PAGE, true, false));
    h.tick(1500);
    h.pastTeardown(); // the zap waits for teardown evidence: still pinned, it is a hazard
    assert.deepEqual(h.sink.anomalies.map((a) => a.rule).sort(), ['pin-pte-divergence', 'pinned-range-zapped']);
    const incidents = log.latest();
    assert.equal(incidents.length, 1, JSON.stringify(incidents.map((i) => i.title)));
    assert.equal(incidents[0]!.title, 'MADV_DONTNEED zapped 1 pinned page of io_uring buffer 0 (ring fd 5) — device writes are lost: confirmed');

    // A divergence citing no triggering event (found by the timer) joins the open incident covering its page;
    // one on another page of the pin opens its own.
    const g = harness();
    g.h.registerRing(100, 5, [[BUF, 4 * PAGE]]);
    g.h.tick(300);
    g.h.pagemap.unmap(100, BUF + PAGE);
    g.h.feed(g.h.ev.madvise(100, BUF + PAGE, PAGE, MADV.DONTNEED));
    g.h.pastTeardown();
    const pinId = g.h.sink.anomalies[0]!.pinId;
    const found = (seq: number, addr: number) => ({
      ...g.h.sink.anomalies[0]!, seq, rule: 'pin-pte-divergence' as const, severity: 'critical' as const, addr, tsNs: 9e12, pinId,
      evidence: [{ type: 'pagemap' as const, read: { tsNs: 9e12, pid: 100, addr, present: true, swapped: false, pfn: 0x9000 }, note: 'timer' }],
    });
    const u1 = g.h.c.incidents.add(found(90, BUF + PAGE));
    assert.equal(u1.change, 'updated');
    assert.equal(u1.incident.severity, 'critical');
    assert.equal(g.h.c.incidents.add(found(91, BUF + 3 * PAGE)).change, 'opened');
  });

  test('a correct program raises no incident', () => {
    const { h, log } = harness();
    h.registerRing(100, 5, [[BUF, 4 * PAGE]]);
    h.tick(2000);
    h.feed(h.ev.pinResult(100, 5, 0, 0, { opcode: 1 }), h.ev.exit(100));
    h.c.verifyNow();
    assert.deepEqual(h.sink.anomalies, []);
    assert.deepEqual(log.changes, []);
  });

  test('stored with links to their anomalies; numbering continues; a schema-1 file derives the same incidents', (t) => {
    const file = join(tempDir(t), 'inc.db');
    const store = Store.open(file);
    store.startSession(SESSION);
    const h = new Harness().anonBuffer(100, BUF, 4, 0x1000);
    const s = h.sink as unknown as Record<string, unknown>;
    for (const m of ['event', 'pin', 'pagemapRead', 'anomaly', 'incident', 'lost'] as const) {
      const mine = s[m] as ((...a: unknown[]) => void) | undefined;
      s[m] = (...a: unknown[]) => {
        mine?.apply(h.sink, a);
        (store[m] as (...a: unknown[]) => void).apply(store, a);
      };
    }
    mapFixedOverPinnedPage(h);
    store.flush();
    const stored = store.incidents();
    assert.equal(stored.length, 1);
    assert.equal(stored[0].severity, 'critical');
    assert.match(stored[0].title, /^MAP_FIXED replaced 1 pinned page of io_uring buffer 0/);
    assert.deepEqual(stored[0].rules, ['pin-pte-divergence', 'pinned-range-zapped', 'pin-leak']);
    assert.equal(stored[0].anomalySeqs.length, 3);
    assert.equal(store.nextSeqs().firstIncidentId, 2);
    assert.deepEqual(store.incidents({ open: true }), []);
    store.close();

    // The same file as schema 1 wrote it: no incident tables. Readers derive; a writer adds the tables.
    const db = new Database(file);
    db.exec(`DROP TABLE incident_anomalies; DROP TABLE incidents; UPDATE meta SET value = '1' WHERE key = 'schema_version'`);
    const derived = deriveIncidents(db);
    db.close();
    assert.equal(derived.length, 1);
    const { openedWallMs: _o, updatedWallMs: _u, closedWallMs: _c, ...want } = stored[0];
    const { openedWallMs: _o2, updatedWallMs: _u2, closedWallMs: _c2, ...got } = derived[0];
    assert.deepEqual(got, want);
    const ro = Store.open(file, { readonly: true });
    assert.equal(ro.incidents().length, 1);
    ro.close();
    const rw = Store.open(file);
    assert.equal(rw.nextSeqs().firstIncidentId, 2, 'the upgrade stored the derived incident');
    assert.deepEqual(rw.incidents().map((i) => i.title), [stored[0].title]);
    rw.close();
    const after = new Database(file, { readonly: true });
    assert.equal((after.prepare(`SELECT value FROM meta WHERE key = 'schema_version'`).get() as { value: string }).value, String(SCHEMA_VERSION));
    after.close();
  });
});

describe('RecentEvents', () => {
  const ev = (seq: number) => ({ kind: 'exit', tsNs: seq, pid: 1, tid: 1, comm: 'c', seq }) as SequencedEvent;

  test('finds what it kept by seq and forgets the oldest first', () => {
    const r = new RecentEvents(4);
    assert.equal(r.get(1), null);
    for (const s of [3, 5, 8]) r.note(ev(s));
    assert.equal(r.get(5)?.seq, 5);
    assert.equal(r.get(4), null);
    for (const s of [9, 12, 13]) r.note(ev(s)); // 3 and 5 go
    assert.deepEqual([3, 5, 8, 9, 12, 13, 14].map((s) => r.get(s)?.seq ?? null), [null, null, 8, 9, 12, 13, null]);
    for (let s = 20; s < 40; s++) r.note(ev(s));
    assert.deepEqual([35, 36, 37, 38, 39].map((s) => r.get(s)?.seq ?? null), [null, 36, 37, 38, 39]);
  });

  test('the same seq again replaces it; a seq going back starts over', () => {
    const r = new RecentEvents(4);
    r.note(ev(1));
    const again = ev(1);
    r.note(again);
    assert.equal(r.get(1), again);
    r.note(ev(7));
    r.note(ev(2));
    assert.deepEqual([1, 7, 2].map((s) => r.get(s)?.seq ?? null), [null, null, 2]);
  });
});
