// A 1 GiB pin on the real kernel (root, real bpftrace, io_uring fixed buffer of 262,144 pages), THP-backed and
// in plain 4 KiB pages: `pinwatch record` captures it with every pinned pfn equal to what /proc/PID/pagemap
// shows (read here, page by page), and a one-page divergence inside it (MADV_DONTNEED of one page, then a write)
// is confirmed at that page. The stored pin is read through StoreQueries.pinDetail (runs or pages, whichever the
// store holds). Only this test's own pid is judged (other helpers may trace at the same time).
import assert from 'node:assert/strict';
import { closeSync, mkdtempSync, openSync, readSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import Database from 'better-sqlite3';
import { StoreQueries } from '../../collector/store/index.ts';
import { pagesOfRuns } from '../../schema/pin-runs.ts';
import { startHeldPin, waitFor } from '../support/held-pin.ts';
import { liveGate } from '../support/live-prereqs.ts';
import { startRecord } from '../support/record.ts';

const gate = liveGate();
const PAGE = 4096;
const PAGES = 262_144;
const ZAP_PAGE = 200_003; // inside a 2 MiB folio, far from either end

/** pfns of `count` pages from `addr` (NaN where not present), read from pagemap in 64k-page chunks. */
function pagemapPfns(pid: number, addr: number, count: number): Float64Array {
  const out = new Float64Array(count).fill(NaN);
  const fd = openSync(`/proc/${pid}/pagemap`, 'r');
  try {
    const chunk = 65536;
    const buf = Buffer.alloc(chunk * 8);
    for (let first = 0; first < count; first += chunk) {
      const n = Math.min(chunk, count - first);
      const got = readSync(fd, buf, 0, n * 8, ((addr / PAGE) + first) * 8);
      for (let i = 0; i < got / 8; i++) {
        const v = buf.readBigUInt64LE(i * 8);
        if (v >> 63n) out[first + i] = Number(v & ((1n << 55n) - 1n));
      }
    }
  } finally {
    closeSync(fd);
  }
  return out;
}

function pinIdOf(db: string, pid: number): number | undefined {
  const d = new Database(db, { readonly: true, fileMustExist: true });
  try {
    return (d.prepare(`SELECT id FROM pins WHERE pid = ? ORDER BY id LIMIT 1`).get(pid) as { id: number } | undefined)?.id;
  } catch {
    return undefined;
  } finally {
    d.close();
  }
}

describe('a 1 GiB pin (live, this kernel)', gate, () => {
  const dir = mkdtempSync(join(tmpdir(), 'pinwatch-large-pin-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  for (const thp of [true, false]) {
    test(`${thp ? 'THP-backed' : 'plain 4 KiB pages'}: every pinned pfn right, a one-page divergence inside it confirmed`, { timeout: 480_000 }, async () => {
      const db = join(dir, `large-${thp ? 'thp' : '4k'}.db`);
      const rec = await startRecord(db);
      const held = await startHeldPin({ HELD_PAGES: String(PAGES), HELD_THP: thp ? '1' : '0', HELD_ZAP_PAGE: String(ZAP_PAGE) }, 180_000);
      try {
        const buf = Number(held.facts().find((f) => f.step === 'pinned')!.buf);
        const truth = pagemapPfns(held.pid, buf, PAGES);
        assert.equal(truth.filter((p) => Number.isNaN(p)).length, 0, 'every page of the buffer is present (pinned)');
        // The pin is stored (the collector's pin-time read ran) before the hazard.
        await waitFor(() => pinIdOf(db, held.pid) !== undefined, 60_000, `the pin of ${held.pid} in the recording\n${rec.stderr()}`);
        await new Promise((r) => setTimeout(r, 500));
        const f = await held.diverge();
        await new Promise((r) => setTimeout(r, 2000));
        await held.stop();
        await new Promise((r) => setTimeout(r, 500));
        assert.equal(await rec.stop('SIGINT'), 0, rec.stderr());

        const q = StoreQueries.open(db);
        try {
          const pin = q.pinDetail(pinIdOf(db, held.pid)!)!;
          assert.equal(pin.pageCount, PAGES);
          assert.equal(pin.addr, buf);
          const pages = [...pagesOfRuns(pin.runs)];
          assert.equal(pages.length, PAGES, 'every page stored');
          let wrong = 0;
          let firstWrong = '';
          for (let i = 0; i < PAGES; i++) {
            if (pages[i].pinnedPfn === truth[i]) continue;
            if (wrong++ === 0) firstWrong = `page ${i}: stored ${pages[i].pinnedPfn}, pagemap ${truth[i]}`;
          }
          assert.equal(wrong, 0, `pinned pfns that differ from pagemap (first: ${firstWrong})`);
          process.stderr.write(`# ${thp ? 'THP' : '4k'}: ${PAGES} pages stored as ${pin.runs.length} runs\n`);
        } finally {
          q.close();
        }
        const zap = Number(f.zap_addr);
        assert.equal(zap, buf + ZAP_PAGE * PAGE);
        assert.notEqual(Number(f.pfn_after), Number(f.pfn_before), 'the page table maps a new page after the zap and write');
        const d = new Database(db, { readonly: true });
        try {
          const div = d.prepare(`SELECT rule, pid, addr, confirmed FROM anomalies WHERE pid = ? AND rule = 'pin-pte-divergence'`).all(held.pid) as { rule: string; pid: number; addr: number; confirmed: number }[];
          assert.deepEqual(div.map((a) => [a.rule, a.pid, a.addr, a.confirmed]), [['pin-pte-divergence', held.pid, zap, 1]]);
        } finally {
          d.close();
        }
      } finally {
        await held.stop();
        await rec.stop('SIGINT');
      }
    });
  }
});
