// Browser test of replay mode: `serve({ replay: FILE })` on a real recording (the one the repo ships, made with
// the scenarios on 6.18; PINWATCH_E2E_RECORDING overrides it). Every view is opened in headless Chromium and
// checked against what the SQLite file holds; the socket protocol's resume/no-duplicate rule, /metrics and the
// export are checked too. Needs no root. Screenshots of every view go to test-output/screenshots/replay-*.png.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';
import Database from 'better-sqlite3';
import { io as connect, type Socket } from 'socket.io-client';
import { RULE_INFOS } from '../../collector/rules/index.ts';
import { deriveIncidents } from '../../collector/store/incidents.ts';
import type { Incident } from '../../schema/incidents.ts';
import { ensureWebBuild, REPO_ROOT } from '../../web/server/build.ts';
import { browserGate, launchBrowser, screenshot, type Browser } from './support/browser.ts';
import { startServer, type ServerHandle } from './support/server.ts';

const RECORDING = resolve(REPO_ROOT, process.env.PINWATCH_E2E_RECORDING ?? 'web/recordings/scenarios-6.18.db');
const hex = (n: number) => '0x' + n.toString(16);

interface AnomalyRow {
  seq: number;
  rule: string;
  severity: string;
  pid: number;
  addr: number;
  pfn: number | null;
  new_pfn: number | null;
}

function readRecording() {
  const db = new Database(RECORDING, { readonly: true, fileMustExist: true });
  try {
    return {
      anomalies: db.prepare('SELECT seq, rule, severity, pid, addr, pfn, new_pfn FROM anomalies ORDER BY seq').all() as AnomalyRow[],
      pins: db.prepare('SELECT id, pid, state FROM pins ORDER BY id').all() as { id: number; pid: number; state: string }[],
      session: db.prepare('SELECT host, kernel, mode, probes_json FROM sessions ORDER BY id DESC LIMIT 1').get() as {
        host: string;
        kernel: string;
        mode: string;
        probes_json: string;
      },
      events: (db.prepare('SELECT count(*) AS n FROM events').get() as { n: number }).n,
    };
  } finally {
    db.close();
  }
}

/** Collects 'anomaly' messages until none arrived for quietMs. */
function collectAnomalies(s: Socket, quietMs = 400): Promise<number[]> {
  return new Promise((resolveSeqs) => {
    const seqs: number[] = [];
    let timer = setTimeout(done, quietMs);
    function done() {
      s.off('anomaly', on);
      s.off('anomalies', onPage);
      resolveSeqs(seqs);
    }
    function on(a: { seq: number }) {
      seqs.push(a.seq);
      clearTimeout(timer);
      timer = setTimeout(done, quietMs);
    }
    // A resume arrives in pages; live anomalies one by one.
    function onPage(page: { seq: number }[]) {
      for (const a of page) on(a);
    }
    s.on('anomaly', on);
    s.on('anomalies', onPage);
  });
}

describe('dashboard in replay mode (headless Chromium)', browserGate(), () => {
  let server: ServerHandle;
  let browser: Browser;
  let rec: ReturnType<typeof readRecording>;

  before(
    async () => {
      assert.ok(existsSync(RECORDING), `the repo must ship a real recording at ${RECORDING} (web/recordings/README.md says how it was made)`);
      rec = readRecording();
      assert.ok(rec.anomalies.length > 0, 'the shipped recording holds anomalies');
      await ensureWebBuild((m) => console.log(`# ${m}`));
      server = await startServer({ replay: RECORDING });
      browser = await launchBrowser();
    },
    { timeout: 15 * 60_000 },
  );

  after(async () => {
    await browser?.close();
    if (server) assert.equal(await server.stop(), 0, `server must exit 0 on SIGTERM:\n${server.output()}`);
  });

  test('overview names the recorded host, kernel, mode and probes, and marks it as a replay', async () => {
    const page = await browser.newPage();
    await page.goto(server.url + '/');
    await page.locator('[data-source-kind="replay"]').waitFor();
    const session = page.getByTestId('session');
    await session.waitFor();
    const text = await session.innerText();
    assert.ok(text.includes(rec.session.host), text);
    assert.ok(text.includes(rec.session.kernel), text);
    assert.ok(text.includes(rec.session.mode), text);
    const probes = JSON.parse(rec.session.probes_json) as unknown[];
    assert.equal(await page.locator('[data-testid="probes"] tbody tr').count(), probes.length);
    await page.locator('[role="status"][data-status-level]').filter({ hasText: 'Replay of' }).waitFor();
    await page.getByTestId('rates-chart').locator('svg.recharts-surface').first().waitFor();
    await page.getByTestId('anomalies-by-rule').waitFor();
    // The shipped recording ran without a capture gap and predates discovery rows: both blind-spot panels say so.
    await page.getByTestId('capture-gaps').filter({ hasText: 'no capture gaps' }).waitFor();
    assert.equal((await page.getByTestId('gap-count').locator('.v').innerText()).trim(), '0');
    await page.getByTestId('unattributed-pinned').filter({ hasText: 'predates discovery' }).waitFor();
    await screenshot(page, 'replay-overview');
    await page.close();
  });

  test('anomaly feed shows every recorded anomaly with data-rule, data-pid and hex data-addr; filters work', async () => {
    const page = await browser.newPage();
    await page.goto(server.url + '/anomalies?view=rows');
    const rows = page.locator('[data-testid="anomaly-table"] tbody tr');
    const expected = rec.anomalies.slice(-500);
    await page.waitForFunction((n) => document.querySelectorAll('[data-testid="anomaly-table"] tbody tr').length === n, expected.length);
    const got = await rows.evaluateAll((trs) => trs.map((tr) => `${tr.getAttribute('data-seq')} ${tr.getAttribute('data-rule')} ${tr.getAttribute('data-pid')} ${tr.getAttribute('data-addr')}`));
    const want = [...expected].reverse().map((a) => `${a.seq} ${a.rule} ${a.pid} ${hex(a.addr)}`);
    assert.deepEqual(got, want, 'newest first, attributes as stored');
    await screenshot(page, 'replay-anomalies');

    const rule = expected[expected.length - 1]!.rule;
    await page.locator('select[data-filter="rule"]').selectOption(rule);
    await page.waitForFunction(
      (r) => [...document.querySelectorAll('[data-testid="anomaly-table"] tbody tr')].every((tr) => tr.getAttribute('data-rule') === r),
      rule,
    );
    assert.equal(await rows.count(), expected.filter((a) => a.rule === rule).length);
    await page.locator('select[data-filter="rule"]').selectOption('');
    await page.locator('select[data-filter="confirmed"]').selectOption('confirmed');
    await page.waitForFunction(() => [...document.querySelectorAll('[data-testid="anomaly-table"] tbody tr')].every((tr) => tr.getAttribute('data-confirmed') === 'true'));
    await page.close();
  });

  test('incidents: the recording (written before incidents were stored) shows them derived, findings underneath', async () => {
    const db = new Database(RECORDING, { readonly: true, fileMustExist: true });
    let want: Incident[];
    try {
      want = deriveIncidents(db);
    } finally {
      db.close();
    }
    assert.ok(want.length > 0 && want.length < rec.anomalies.length, `fewer incidents (${want.length}) than anomalies (${rec.anomalies.length})`);
    const page = await browser.newPage();
    await page.goto(server.url + '/anomalies');
    const list = page.getByTestId('incident-list');
    await page.waitForFunction((n) => document.querySelectorAll('[data-testid="incident-list"] [data-incident-id]:not([data-incident-id=""])').length === n, want.length);
    const got = await list.locator('[data-incident-id]').evaluateAll((els) =>
      els.map((el) => `${el.getAttribute('data-incident-id')} ${el.getAttribute('data-severity')} ${[...el.querySelectorAll('tr[data-seq]')].map((tr) => tr.getAttribute('data-seq')).join(',')}`),
    );
    const expected = [...want].reverse().map((i) => `${i.id} ${i.severity} ${[...i.anomalySeqs].reverse().join(',')}`);
    assert.deepEqual(got, expected, 'newest first, every anomaly under its incident');
    const critical = want.find((i) => i.severity === 'critical')!;
    assert.ok(critical, 'a critical incident in the recording');
    const title = await list.locator(`[data-incident-id="${critical.id}"]`).getByTestId('incident-title').textContent();
    assert.equal(title, critical.title);
    await screenshot(page, 'replay-incidents');
    await page.close();
  });

  test('anomaly detail: explanation from the rule catalog, resolved evidence, the page timeline', async () => {
    const a = rec.anomalies.find((x) => x.rule === 'pin-pte-divergence') ?? rec.anomalies[0]!;
    const info = RULE_INFOS.find((r) => r.id === a.rule)!;
    const page = await browser.newPage();
    await page.goto(server.url + '/anomalies');
    await page.locator(`tr[data-seq="${a.seq}"]`).click();
    await page.waitForURL(`**/anomalies/${a.seq}`);
    const explanation = page.getByTestId('explanation');
    await explanation.getByText(info.whyItMatters.slice(0, 40), { exact: false }).waitFor();
    const detail = page.locator('[data-view="anomaly-detail"]');
    assert.equal(await detail.getAttribute('data-rule'), a.rule);
    assert.equal(await detail.getAttribute('data-addr'), hex(a.addr));
    for (const seed of info.seeds) await explanation.getByText(`seed ${seed}`).waitFor();
    const evidence = page.getByTestId('evidence');
    await evidence.locator('tbody tr').first().waitFor();
    assert.equal(await evidence.getByText('not in the store yet').count(), 0, 'every evidence event resolves from the recording');
    const timeline = page.getByTestId('page-timeline');
    await timeline.locator('svg').waitFor();
    assert.ok(Number(await timeline.getAttribute('data-events')) > 0, 'the page timeline has events');
    if (a.pfn !== null && a.new_pfn !== null) {
      // Both pfns are drawn on the PTE lane: the pinned one and the one the page table maps instead.
      await timeline.locator('svg text', { hasText: hex(a.new_pfn) }).first().waitFor();
      await page.getByText(hex(a.pfn)).first().waitFor();
    }
    await screenshot(page, 'replay-anomaly-detail');
    await page.close();
  });

  test('DMA buffers table lists every pin with its state and sorts', async () => {
    const page = await browser.newPage();
    await page.goto(server.url + '/pins');
    const rows = page.locator('[data-testid="pins-table"] tbody tr[data-pin-id]');
    await page.waitForFunction((n) => document.querySelectorAll('[data-testid="pins-table"] tbody tr[data-pin-id]').length === n, rec.pins.length);
    const got = await rows.evaluateAll((trs) => trs.map((tr) => `${tr.getAttribute('data-pin-id')} ${tr.getAttribute('data-state')}`).sort());
    assert.deepEqual(got, rec.pins.map((p) => `${p.id} ${p.state}`).sort());
    // the pins table's own header (the buffer sets above it have a 'pins' column too)
    await page.locator('[data-testid="pins-table"] th', { hasText: 'pin' }).first().click();
    const ids = await rows.evaluateAll((trs) => trs.map((tr) => Number(tr.getAttribute('data-pin-id'))));
    assert.deepEqual(ids, [...ids].sort((x, y) => x - y), 'sorted by pin id after a click on the header');
    const diverged = rec.anomalies.find((x) => x.rule === 'pin-pte-divergence');
    const pinRow = diverged ? page.locator(`tr[data-pid="${diverged.pid}"]`).first() : rows.first();
    await pinRow.click();
    await page.getByText('timeline →').first().waitFor();
    await screenshot(page, 'replay-pins');
    await page.close();
  });

  test('page timeline of the diverged page: pinned pfn, then another pfn on the PTE lane', async () => {
    const a = rec.anomalies.find((x) => x.rule === 'pin-pte-divergence') ?? rec.anomalies[0]!;
    const page = await browser.newPage();
    await page.goto(server.url + '/timeline');
    await page.getByTestId('pinned-pages').locator('tbody tr').first().waitFor();
    await page.goto(`${server.url}/timeline?pid=${a.pid}&addr=${hex(a.addr)}`);
    const timeline = page.getByTestId('page-timeline');
    await timeline.locator('svg').waitFor();
    const svgText = await timeline.locator('svg').textContent();
    if (a.new_pfn !== null) assert.ok(svgText!.includes(hex(a.new_pfn)), `the PTE lane names the new pfn ${hex(a.new_pfn)}: ${svgText}`);
    if (a.pfn !== null) assert.ok((await timeline.innerText()).includes(hex(a.pfn)), 'the pinned pfn is named');
    await timeline.locator('select').selectOption('time');
    await screenshot(page, 'replay-timeline');
    await page.close();
  });

  test('scenario page lists the catalog but refuses to run against a replay', async () => {
    const page = await browser.newPage();
    await page.goto(server.url + '/scenarios');
    await page.locator('[data-scenario="uring-dontneed"]').waitFor();
    await page.getByText('scenarios run only against the live server').waitFor();
    assert.equal(await page.locator('button[data-action="run-scenario"]').isDisabled(), true);
    await screenshot(page, 'replay-scenarios');
    await page.close();
  });

  test('socket.io: resume(afterSeq) sends each later anomaly once, in order; a reconnect resumes without duplicates', async () => {
    const seqs = rec.anomalies.map((a) => a.seq);
    const mid = seqs[Math.floor(seqs.length / 2)]!;
    const s = connect(server.url, { transports: ['websocket'], forceNew: true, reconnection: false });
    try {
      await new Promise<void>((r) => s.once('connect', () => r()));
      const none = collectAnomalies(s);
      assert.deepEqual(await none, [], 'nothing before resume');
      const firstBatch = collectAnomalies(s);
      s.emit('resume', mid);
      assert.deepEqual(await firstBatch, seqs.filter((q) => q > mid));
      const again = collectAnomalies(s);
      s.emit('resume', seqs[seqs.length - 1]!);
      assert.deepEqual(await again, [], 'resume from the last seq held: nothing twice');
      s.disconnect();
      s.connect();
      await new Promise<void>((r) => s.once('connect', () => r()));
      const afterReconnect = collectAnomalies(s);
      s.emit('resume', 0);
      assert.deepEqual(await afterReconnect, seqs, 'a fresh resume(0) gets all, once each, in seq order');
    } finally {
      s.close();
    }
  });

  test('/metrics and /api/export agree with the recording', async () => {
    const metrics = await (await fetch(server.url + '/metrics')).text();
    const L = `host="${rec.session.host}",kernel="${rec.session.kernel.replace(/\./g, '\\.')}"`;
    const byRule = new Map<string, number>();
    for (const a of rec.anomalies) byRule.set(`${a.rule}|${a.severity}`, (byRule.get(`${a.rule}|${a.severity}`) ?? 0) + 1);
    for (const [k, n] of byRule) {
      const [rule, severity] = k.split('|');
      assert.match(metrics, new RegExp(`pinwatch_anomalies_total\\{${L},rule="${rule}",severity="${severity}"\\} ${n}\\b`));
    }
    const sumEvents = [...metrics.matchAll(/^pinwatch_events_total\{[^}]*kind="[a-z_]+"\} (\d+)$/gm)].reduce((n, m) => n + Number(m[1]), 0);
    assert.equal(sumEvents, rec.events);
    const db = new Database(RECORDING, { readonly: true, fileMustExist: true });
    const incidents = deriveIncidents(db);
    db.close();
    const sumIncidents = [...metrics.matchAll(/^pinwatch_incidents_total\{[^}]*\} (\d+)$/gm)].reduce((n, m) => n + Number(m[1]), 0);
    assert.equal(sumIncidents, incidents.length, 'every incident of the recording counted once');
    assert.match(metrics, new RegExp(`^pinwatch_lost_events_total\\{${L}\\} \\d+$`, 'm'));
    assert.match(metrics, new RegExp(`^pinwatch_info\\{${L},mode="${rec.session.mode}",bpftrace="[^"]*",source="replay"\\} 1$`, 'm'));
    assert.doesNotMatch(metrics, /^pinwatch_bpftrace_up\{/m, 'a recording captures nothing and is not "down"');

    const res = await fetch(server.url + '/api/export');
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-disposition') ?? '', /attachment; filename=".+\.db"/);
    const body = Buffer.from(await res.arrayBuffer());
    assert.equal(body.subarray(0, 16).toString('latin1'), 'SQLite format 3\0');
    const dir = mkdtempSync(join(tmpdir(), 'pinwatch-export-test-'));
    try {
      writeFileSync(join(dir, 'x.db'), body);
      const copy = new Database(join(dir, 'x.db'), { readonly: true });
      assert.equal((copy.prepare('SELECT count(*) AS n FROM anomalies').get() as { n: number }).n, rec.anomalies.length);
      copy.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    // The API refuses what it must: unknown source, bad address, cross-origin upload.
    assert.equal((await fetch(server.url + '/api/overview?src=nope')).status, 404);
    assert.equal((await fetch(server.url + '/api/timeline?pid=1&addr=zz')).status, 400);
    const put = await fetch(server.url + '/api/recordings/upload', { method: 'PUT', body: readFileSync(RECORDING), headers: { origin: 'http://evil.example' } });
    assert.equal(put.status, 403);
  });

  test('no page threw or logged an error', () => {
    assert.deepEqual(browser.errors, []);
  });
});
