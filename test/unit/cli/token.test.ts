// The access token of non-loopback binds: created once with mode 0600, read back unchanged, refused when others
// can read it or it holds no token.
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { loadOrCreateToken, stateDir, TokenFileError } from '../../../cli/compose/token.ts';

const dir = mkdtempSync(join(tmpdir(), 'pinwatch-token-'));
after(() => rmSync(dir, { recursive: true, force: true }));

test('created on first start (0600, in a new 0700 directory), the same on the next', () => {
  const file = join(dir, 'state', 'token');
  const first = loadOrCreateToken(file);
  assert.equal(first.created, true);
  assert.match(first.token, /^[A-Za-z0-9_-]{43}$/);
  assert.equal(statSync(file).mode & 0o777, 0o600);
  assert.equal(statSync(join(dir, 'state')).mode & 0o777, 0o700);
  const again = loadOrCreateToken(file);
  assert.deepEqual(again, { ...first, created: false });
});

test('a token file others can read, or one without a token, is refused with the fix', () => {
  const file = join(dir, 'open-token');
  writeFileSync(file, 'x'.repeat(32));
  chmodSync(file, 0o644);
  assert.throws(() => loadOrCreateToken(file), (e: unknown) => e instanceof TokenFileError && /chmod 600/.test(e.fix));
  chmodSync(file, 0o600);
  writeFileSync(file, 'short');
  assert.throws(() => loadOrCreateToken(file), TokenFileError);
});

test('state directory: systemd StateDirectory= first', () => {
  assert.equal(stateDir({ STATE_DIRECTORY: '/var/lib/pinwatch:/other' }), '/var/lib/pinwatch');
});
