// The fleet, end to end: real Prometheus and Alertmanager (Debian's packages) on loopback ports scrape three
// pinwatch instances, each in its own network namespace made by the test — hv-a captures live, hv-b and hv-c
// serve the shipped recording as if live — with the shipped rules (deploy/prometheus/pinwatch.rules.yml). The
// uring-dontneed reproducer on the live host makes PinwatchDivergenceConfirmed fire; Alertmanager delivers it to
// a fourth pinwatch (the monitoring host's dashboard, POST /api/alerts), whose Fleet page (serve --prometheus)
// shows the three hosts, the live host's open incident and the alert in Chromium. Nothing fires for hv-b/hv-c.
import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { buildScenario, runScenario, type RunResult } from '../../scenarios/index.ts';
import type { FleetData, ReceivedAlert } from '../../web/shared/wire.ts';
import { ensureWebBuild } from '../../web/server/build.ts';
import { liveGate } from '../support/live-prereqs.ts';
import { toolGate } from '../support/prometheus-tools.ts';
import { browserGate, launchBrowser, screenshot, type Browser } from './support/browser.ts';
import { createNetNs, removeNetNs, spawnInNetNs, type NetNs } from './support/netns.ts';
import { freePort, promQuery, startAlertmanager, startPrometheus, type Daemon } from './support/prometheus-stack.ts';
import { stopChild } from '../support/stop-child.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const RECORDING = join(ROOT, 'web/recordings/scenarios-6.18.db');
const RULES = join(ROOT, 'deploy/prometheus/pinwatch.rules.yml');
const SCENARIO = 'uring-dontneed';
const HOSTS = ['hv-a', 'hv-b', 'hv-c'] as const;

const gate = (() => {
  for (const g of [liveGate(), toolGate('prometheus', 'prometheus-alertmanager', 'nsenter', 'ip'), browserGate()]) if (g.skip) return g;
  return { skip: false as const };
})();

interface Pinwatch {
  url: string;
  child: ChildProcess;
  output(): string;
  stop(): Promise<number | null>;
}

/** Flags a non-loopback bind may need on this pinwatch (a token requirement may add --insecure). */
function bindFlags(): string[] {
  const help = execFileSync(process.execPath, [join(ROOT, 'bin/pinwatch.js'), 'serve', '--help'], { encoding: 'utf8' });
  return help.includes('--insecure') ? ['--insecure'] : [];
}

/** `pinwatch serve …` (the real CLI), in a network namespace or here; resolves once it prints its URL. */
async function startPinwatch(ns: NetNs | null, args: string[]): Promise<Pinwatch> {
  const argv = [join(ROOT, 'bin/pinwatch.js'), 'serve', ...args];
  const opts = { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] as ('ignore' | 'pipe')[], env: { ...process.env, PINWATCH_LOG_LEVEL: 'warn' } };
  const child = ns ? spawnInNetNs(ns, process.execPath, argv, opts) : spawn(process.execPath, argv, opts);
  let out = '';
  child.stdout!.setEncoding('utf8').on('data', (c: string) => (out += c));
  child.stderr!.setEncoding('utf8').on('data', (c: string) => (out += c));
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  const url = await new Promise<string>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`pinwatch ${args.join(' ')} not listening after 240 s:\n${out}`)), 240_000);
    const check = () => {
      const m = /pinwatch: dashboard at (\S+)/.exec(out);
      if (m) {
        clearTimeout(t);
        resolve(m[1]!);
      }
    };
    child.stdout!.on('data', check);
    void exited.then((code) => {
      clearTimeout(t);
      reject(new Error(`pinwatch ${args.join(' ')} exited (${code}):\n${out}`));
    });
  });
  return {
    url,
    child,
    output: () => out,
    stop: () => stopChild(child, exited),
  };
}

async function until<T>(what: string, ms: number, probe: () => Promise<T | null | undefined | false>): Promise<T> {
  const deadline = Date.now() + ms;
  let last: unknown = null;
  for (;;) {
    try {
      const v = await probe();
      if (v) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms} ms${last ? ` (last error: ${(last as Error).message})` : ''}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

describe('fleet: Prometheus + Alertmanager over three pinwatch hosts in network namespaces (root, bpftrace, Chromium)', gate, () => {
  const namespaces: NetNs[] = [];
  const hosts = new Map<string, Pinwatch>();
  let monitor: Pinwatch;
  let prometheus: Daemon;
  let alertmanager: Daemon;
  let browser: Browser;
  let dir: string;
  let tokenFile: string;

  before(
    async () => {
      dir = mkdtempSync(join(tmpdir(), 'pinwatch-e2e-fleet-'));
      await ensureWebBuild((m) => console.log(`# ${m}`));
      await buildScenario(SCENARIO);
      const tag = String(process.pid);
      HOSTS.forEach((_, i) => namespaces.push(createNetNs(tag, i + 1)));
      // Network binds need the access token (docs/security.md): one token file for the three hosts, which
      // Prometheus sends as a bearer token and the browser exchanges at /login for its cookie.
      tokenFile = join(dir, 'token');
      writeFileSync(tokenFile, `${randomBytes(24).toString('base64url')}\n`, { mode: 0o600 });
      const flags = [...bindFlags(), '--token-file', tokenFile];
      const [a, b, c] = namespaces as [NetNs, NetNs, NetNs];
      // One at a time: each first start of Next and bpftrace's attach are CPU-heavy on 2 cores.
      hosts.set('hv-a', await startPinwatch(a, ['--db', join(dir, 'hv-a.db'), '--host', a.addr, '--port', '3000', '--host-label', 'hv-a', ...flags]));
      hosts.set('hv-b', await startPinwatch(b, ['--replay', RECORDING, '--host', b.addr, '--port', '3000', '--host-label', 'hv-b', ...flags]));
      hosts.set('hv-c', await startPinwatch(c, ['--replay', RECORDING, '--host', c.addr, '--port', '3000', '--host-label', 'hv-c', ...flags]));
      const promPort = await freePort();
      monitor = await startPinwatch(null, ['--replay', RECORDING, '--host', '127.0.0.1', '--port', '0', '--host-label', 'monitor', '--prometheus', `http://127.0.0.1:${promPort}`]);
      alertmanager = await startAlertmanager(dir, `${monitor.url}/api/alerts`);
      prometheus = await startPrometheus(dir, promPort, namespaces.map((n) => `${n.addr}:3000`), RULES, alertmanager.url, tokenFile);
      browser = await launchBrowser();
    },
    { timeout: 15 * 60_000 },
  );

  after(async () => {
    await browser?.close();
    await prometheus?.stop();
    await alertmanager?.stop();
    for (const p of [monitor, ...hosts.values()]) if (p) assert.equal(await p.stop(), 0, `pinwatch must exit 0 on SIGTERM:\n${p.output()}`);
    for (const ns of namespaces) removeNetNs(ns);
    for (const ns of namespaces) assert.ok(!execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' }).includes(ns.name), `${ns.name} removed`);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('Prometheus scrapes the three hosts over their veths: host labels, live vs replay, bpftrace up on the live one', async () => {
    const info = await until('three pinwatch targets up', 60_000, async () => {
      const up = await promQuery(prometheus.url, 'up{job="pinwatch"} == 1');
      const info = await promQuery(prometheus.url, 'pinwatch_info');
      return up.length === 3 && info.length === 3 ? info : null;
    });
    const byHost = Object.fromEntries(info.map((s) => [s.metric.host, s.metric]));
    assert.deepEqual(Object.keys(byHost).sort(), [...HOSTS]);
    assert.equal(byHost['hv-a']!.source, 'live');
    assert.equal(byHost['hv-a']!.instance, `${namespaces[0]!.addr}:3000`);
    assert.equal(byHost['hv-b']!.source, 'replay');
    assert.equal(byHost['hv-c']!.source, 'replay');
    const bpftrace = await promQuery(prometheus.url, 'pinwatch_bpftrace_up');
    assert.deepEqual(bpftrace.map((s) => `${s.metric.host} ${s.value[1]}`), ['hv-a 1']);
  });

  test(`${SCENARIO} on hv-a: the divergence alert fires, Alertmanager delivers it to the dashboard, the Fleet page shows it`, { timeout: 180_000 }, async () => {
    let pid = 0;
    // Hold the pin 30 s after the hazard: the divergent page stays pinned while the alert travels and the page looks.
    const run: Promise<RunResult> = runScenario(SCENARIO, { env: { PINWATCH_HOLD_AFTER_MS: '30000' }, onSpawn: (p) => (pid = p) });
    const started = Date.now();

    const alert = await until('PinwatchDivergenceConfirmed delivered by Alertmanager to POST /api/alerts', 60_000, async () => {
      const alerts = (await (await fetch(`${monitor.url}/api/alerts`)).json()) as ReceivedAlert[];
      return alerts.find((a) => a.name === 'PinwatchDivergenceConfirmed' && a.status === 'firing' && a.labels.pid === String(pid));
    });
    console.log(`# divergence alert for pid ${pid} at the dashboard ${Date.now() - started} ms after the reproducer started`);
    assert.equal(alert.host, 'hv-a');
    assert.equal(alert.severity, 'critical');
    assert.equal(alert.labels.source, 'io_uring');
    assert.equal(alert.labels.comm, SCENARIO);
    assert.equal(alert.instance, `${namespaces[0]!.addr}:3000`);
    assert.equal(alert.summary, `${SCENARIO}[${pid}] on hv-a: 1 pinned page(s) diverged (io_uring)`);
    assert.equal(alert.dashboard, `http://${namespaces[0]!.addr}:3000/anomalies`);

    // Prometheus' view: only hv-a diverged; no host is down or blind.
    const firing = await promQuery(prometheus.url, 'ALERTS{alertstate="firing"}');
    assert.deepEqual([...new Set(firing.map((s) => `${s.metric.alertname} ${s.metric.host}`))].sort(), ['PinwatchDivergenceConfirmed hv-a']);

    // The Fleet page in Chromium: three hosts, hv-a healthy with its open critical incident and divergent page.
    const page = await browser.newPage();
    await page.goto(`${monitor.url}/fleet`);
    await page.waitForFunction(() => document.querySelectorAll('[data-testid="fleet-hosts"] tbody tr[data-host]').length === 3);
    const rows = await page.locator('[data-testid="fleet-hosts"] tbody tr').evaluateAll((trs) => trs.map((tr) => `${tr.getAttribute('data-host')} ${tr.getAttribute('data-health')}`));
    assert.deepEqual(rows.sort(), ['hv-a ok', 'hv-b replay', 'hv-c replay']);
    const hvA = page.locator('[data-testid="fleet-hosts"] tr[data-host="hv-a"]');
    await page.waitForFunction(() => Number(document.querySelector('tr[data-host="hv-a"]')?.getAttribute('data-open-incidents')) >= 1);
    assert.match((await hvA.textContent()) ?? '', /\(1 crit\)/);
    assert.equal(await hvA.locator('a').getAttribute('href'), `http://${namespaces[0]!.addr}:3000/`);
    await page.locator(`[data-testid="fleet-alerts"] tr[data-alertname="PinwatchDivergenceConfirmed"][data-host="hv-a"][data-status="firing"]`).waitFor();
    const fleet = (await (await fetch(`${monitor.url}/api/fleet`)).json()) as FleetData;
    assert.equal(fleet.error, undefined);
    assert.equal(fleet.hosts.find((h) => h.host === 'hv-a')!.divergentPages, 1);
    assert.deepEqual(fleet.hosts.filter((h) => h.divergentPages > 0).map((h) => h.host), ['hv-a']);
    await screenshot(page, 'fleet');

    // The host's own dashboard (the Fleet page's link) has the incident: one critical line, its findings underneath.
    const token = readFileSync(tokenFile, 'utf8').trim();
    await page.goto(`http://${namespaces[0]!.addr}:3000/login?token=${encodeURIComponent(token)}`);
    await page.goto(`http://${namespaces[0]!.addr}:3000/anomalies?q=${pid}`);
    const incident = page.locator(`[data-incident-id][data-pid="${pid}"][data-severity="critical"]`);
    await incident.waitFor();
    assert.match((await incident.getByTestId('incident-title').textContent()) ?? '', /^MADV_DONTNEED zapped 1 pinned page of io_uring buffer \d+ \(ring fd \d+\) — device writes are lost: confirmed$/);
    await page.close();

    const result = await run;
    assert.equal(result.exitCode, 0, result.output);
  });
});
