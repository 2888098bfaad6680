// Browser test of the dashboard where live capture is impossible: the server runs as an unprivileged user
// (uid 65534 when the test runs as root; the test's own user otherwise), so bpftrace cannot attach. The page
// must still open, say why in a banner with the fix, and offer the recordings the server has for replay;
// opening one shows it read-only in the same pages. Screenshot: test-output/screenshots/no-capture-overview.png.
import assert from 'node:assert/strict';
import { chmodSync, copyFileSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ensureWebBuild, REPO_ROOT } from '../../web/server/build.ts';
import { browserGate, launchBrowser, screenshot, type Browser } from './support/browser.ts';
import { startServer, type ServerHandle } from './support/server.ts';

const RECORDING = resolve(REPO_ROOT, process.env.PINWATCH_E2E_RECORDING ?? 'web/recordings/scenarios-6.18.db');
const NOBODY = 65534;

describe('dashboard without live capture (unprivileged server)', browserGate(), () => {
  let server: ServerHandle;
  let browser: Browser;
  let dir: string;

  before(
    async () => {
      assert.ok(existsSync(RECORDING), `recording ${RECORDING} must exist`);
      await ensureWebBuild((m) => console.log(`# ${m}`));
      dir = mkdtempSync(join(tmpdir(), 'pinwatch-e2e-nocap-'));
      chmodSync(dir, 0o777);
      // The live database's folder is one of the places the banner offers recordings from.
      copyFileSync(RECORDING, join(dir, basename(RECORDING)));
      chmodSync(join(dir, basename(RECORDING)), 0o644);
      const asRoot = process.getuid?.() === 0;
      server = await startServer({ db: join(dir, 'live.db') }, asRoot ? { uid: NOBODY, gid: NOBODY } : {});
      browser = await launchBrowser();
    },
    { timeout: 15 * 60_000 },
  );

  after(async () => {
    await browser?.close();
    if (server) assert.equal(await server.stop(), 0, `server must exit 0 on SIGTERM:\n${server.output()}`);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('the page opens, says why capture is impossible, gives the fix and offers a replay', async () => {
    assert.equal(server.mode, 'live');
    assert.equal(server.status.level, 'error', `status: ${JSON.stringify(server.status)}`);
    const page = await browser.newPage();
    await page.goto(server.url + '/');
    const banner = page.locator('[role="status"][data-status-level="error"]');
    await banner.waitFor();
    const text = await banner.innerText();
    assert.match(text, /Live capture unavailable/);
    assert.match(text, /fix:/);
    assert.match(text, /--replay/);
    const offer = banner.getByRole('button', { name: basename(RECORDING) });
    await offer.waitFor();
    await screenshot(page, 'no-capture-overview');

    await offer.click();
    await page.waitForURL(/\?src=r\d+/);
    await page.locator('[data-source-kind="replay"]').waitFor();
    await page.getByTestId('session').waitFor();
    await page.goto(page.url().replace(/\/(\?|$)/, '/anomalies$1'));
    await page.locator('[data-testid="incident-list"] [data-incident-id] tbody tr').first().waitFor();
    await page.close();
  });

  test('scenarios cannot be run while capture is down', async () => {
    const page = await browser.newPage();
    await page.goto(server.url + '/scenarios');
    await page.locator('[data-scenario="uring-dontneed"]').waitFor();
    await page.getByText('Live capture is not running').waitFor();
    await page.close();
  });

  test('no page threw or logged an error', () => {
    assert.deepEqual(browser.errors, []);
  });
});
