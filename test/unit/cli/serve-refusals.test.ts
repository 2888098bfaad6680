// pinwatch serve refuses, before starting anything, what would expose the dashboard: plain HTTP on a network
// address without --insecure, TLS without its key, --allowed-host garbage.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BindRefusedError, serve } from '../../../cli/compose/serve.ts';
import { main } from '../../../cli/main.ts';

test('plain HTTP on a non-loopback address is refused without --insecure, with the fix', async () => {
  for (const host of ['0.0.0.0', '::', '10.1.2.3', 'pinwatch.example.org']) {
    await assert.rejects(serve({ host, port: 0 }), (e: unknown) => e instanceof BindRefusedError && /--tls-cert/.test(e.fix) && /--insecure/.test(e.fix), host);
  }
});

test('the CLI: --tls-cert needs --tls-key; --allowed-host must be a host name', async () => {
  const lines: string[] = [];
  const io = { out: (l: string) => lines.push(l), err: (l: string) => lines.push(l) };
  assert.equal(await main(['serve', '--tls-cert', '/etc/hostname'], io), 2);
  assert.match(lines.join('\n'), /--tls-cert and --tls-key go together/);
  lines.length = 0;
  assert.equal(await main(['serve', '--allowed-host', 'evil.example/x'], io), 2);
  assert.match(lines.join('\n'), /--allowed-host/);
});
