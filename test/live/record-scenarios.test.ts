// The product's acceptance test on the real kernel: every bundled scenario runs under `pinwatch record`
// (real bpftrace, real C reproducer, root) and the SQLite recording must hold exactly the anomalies the
// scenario's catalog entry expects — rule, pid, page address, confirmed — and nothing for the silent ones.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import Database from 'better-sqlite3';
import { SCENARIOS, missingDevice, runScenario } from '../../scenarios/index.ts';
import { liveGate } from '../support/live-prereqs.ts';
import { startRecord, type RecordHandle } from '../support/record.ts';

const gate = liveGate();
const hex = (n: number) => '0x' + n.toString(16);

interface Row {
  rule: string;
  severity: string;
  pid: number;
  addr: number;
  pfn: number | null;
  new_pfn: number | null;
  confirmed: number;
  summary: string;
}

function factAddr(facts: Record<string, unknown>[], key: string): number {
  for (const f of facts) {
    const v = f[key];
    if (typeof v === 'string') return Number(BigInt(v));
    if (typeof v === 'number') return v;
  }
  throw new Error(`no fact ${key} in ${JSON.stringify(facts)}`);
}

describe('scenarios under pinwatch record (live, this kernel)', gate, () => {
  const dir = mkdtempSync(join(tmpdir(), 'pinwatch-live-'));
  const db = join(dir, 'record.db');
  let rec: RecordHandle;
  const runs = new Map<string, Awaited<ReturnType<typeof runScenario>>>();

  before(async () => {
    rec = await startRecord(db);
    for (const s of SCENARIOS) {
      runs.set(s.name, await runScenario(s.name));
    }
    // Let the verifier's last pagemap pass and the store's batch land before stopping.
    await new Promise((r) => setTimeout(r, 1500));
    const code = await rec.stop('SIGINT');
    assert.equal(code, 0, `record must exit 0 on SIGINT\n${rec.stderr()}`);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  for (const s of SCENARIOS) {
    test(`${s.name}: ${s.expect.length === 0 ? 'stays silent' : s.expect.map((e) => e.rule).join(' + ')}`, () => {
      const run = runs.get(s.name)!;
      // A device scenario without its device (judged in test:kernels) refuses with exit 2 and must leave nothing.
      const missing = missingDevice(s);
      assert.equal(run.exitCode, missing ? 2 : 0, `scenario ${s.name} ${missing ? `must exit 2 here (${missing})` : 'failed on this kernel'}:\n${run.output}`);
      const d = new Database(db, { readonly: true });
      try {
        const rows = d.prepare('SELECT rule, severity, pid, addr, pfn, new_pfn, confirmed, summary FROM anomalies WHERE pid = ? ORDER BY seq').all(run.pid) as Row[];
        const got = rows.map((r) => `${r.rule} @${hex(r.addr)}${r.confirmed ? ' confirmed' : ''}`).sort();
        const want = s.silent || missing
          ? []
          : s.expect
              .map((e) => {
                const addr = factAddr(run.facts, e.addrFact);
                const confirmed = e.confirmed ?? rows.find((r) => r.rule === e.rule && r.addr === addr)?.confirmed === 1;
                return `${e.rule} @${hex(addr)}${confirmed ? ' confirmed' : ''}`;
              })
              .sort();
        assert.deepEqual(got, want, `anomalies for pid ${run.pid}:\n${rows.map((r) => JSON.stringify(r)).join('\n')}\nscenario output:\n${run.output}`);
        // Children forked by the scenario inherit nothing to report either (their copies are not pinned).
        const children = d
          .prepare("SELECT rule, pid FROM anomalies WHERE pid IN (SELECT json_extract(payload, '$.childPid') FROM events WHERE kind = 'fork' AND pid = ?)")
          .all(run.pid);
        assert.deepEqual(children, [], `anomalies for children of ${run.pid}`);
        for (const e of s.silent || missing ? [] : s.expect) {
          const row = rows.find((r) => r.rule === e.rule)!;
          if (e.severity) assert.equal(row.severity, e.severity, `${e.rule} severity`);
        }
      } finally {
        d.close();
      }
    });
  }

  test('pins table holds the exact pinned pfns the reproducer read from its own pagemap', () => {
    const run = runs.get('uring-dontneed')!;
    const before = factAddr(run.facts, 'pfn_before');
    const zap = factAddr(run.facts, 'zap_addr');
    const d = new Database(db, { readonly: true });
    try {
      // the run holding the zapped page: its first page's pfn + the page's offset in the run
      const page = d
        .prepare(
          `SELECT r.pinned_pfn + (? - (p.addr - p.addr % 4096)) / 4096 - r.page AS pfn FROM pin_page_runs r JOIN pins p ON p.id = r.pin_id
           WHERE p.pid = ? AND (? - (p.addr - p.addr % 4096)) / 4096 BETWEEN r.page AND r.page + r.count - 1`,
        )
        .get(zap, run.pid, zap) as { pfn: number } | undefined;
      assert.ok(page, 'a pin run holds the zapped page');
      assert.equal(page.pfn, before);
      const kinds = new Set((d.prepare('SELECT DISTINCT kind FROM events WHERE pid = ?').all(run.pid) as { kind: string }[]).map((r) => r.kind));
      for (const k of ['pin_iovec', 'pin_result', 'madvise']) assert.ok(kinds.has(k), `events of kind ${k} for pid ${run.pid}: ${[...kinds]}`);
      const session = d.prepare('SELECT kernel, mode, probes_json FROM sessions').get() as { kernel: string; mode: string; probes_json: string };
      assert.equal(session.mode, 'tracepoint');
    } finally {
      d.close();
    }
  });
});
