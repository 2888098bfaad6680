// `pinwatch record` launched the way the README says (`npx pinwatch record …`) stops cleanly when the signal is
// sent to the npx process, not only to its node child: npm forwards SIGINT/SIGTERM to its direct child, which
// .npmrc's script-shell (bash execs the command) makes pinwatch itself; and when a wrapper shell that swallows
// the signal sits in between (dash), pinwatch stops once that wrapper dies and it is re-parented.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, describe, test } from 'node:test';
import { liveGate } from '../support/live-prereqs.ts';

const root = fileURLToPath(new URL('../..', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'pinwatch-npx-'));

async function npxRecord(db: string, extra: string[], signal: NodeJS.Signals): Promise<{ code: number | null; out: string }> {
  const npx = spawn('npx', ['--yes', '--offline', ...extra, 'pinwatch', 'record', '--db', db], {
    cwd: root,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  npx.stdout!.setEncoding('utf8').on('data', (c: string) => (out += c));
  npx.stderr!.setEncoding('utf8').on('data', (c: string) => (out += c));
  const exited = new Promise<number | null>((resolve) => npx.once('exit', (code) => resolve(code)));
  const deadline = Date.now() + 90_000;
  while (!/\bready\b/.test(out)) {
    if (Date.now() > deadline || npx.exitCode !== null) throw new Error(`record not ready through npx:\n${out}`);
    await new Promise((r) => setTimeout(r, 200));
  }
  npx.kill(signal); // the npx process, as a supervisor or a script would
  const timer = setTimeout(() => npx.kill('SIGKILL'), 30_000);
  const code = await exited;
  clearTimeout(timer);
  // With a wrapper in between npx may exit first: the re-parented recorder still writes to our pipe.
  const until = Date.now() + 20_000;
  while (!/pinwatch: stopped/.test(out) && Date.now() < until) await new Promise((r) => setTimeout(r, 200));
  return { code, out };
}

describe('pinwatch record through npx stops on a signal to npx (live)', liveGate(), () => {
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('SIGINT to npx: record drains, flushes and exits 0', async () => {
    const r = await npxRecord(join(dir, 'a.db'), [], 'SIGINT');
    assert.match(r.out, /pinwatch: stopped \(SIGINT\)/, r.out);
    assert.equal(r.code, 0, r.out);
  });

  test('SIGTERM to npx with sh (dash) in between: record stops when its parent goes', async () => {
    const r = await npxRecord(join(dir, 'b.db'), ['--script-shell=/bin/sh'], 'SIGTERM');
    assert.match(r.out, /pinwatch: stopped \((SIGTERM|SIGHUP)\)/, r.out);
  });
});
