// The collector link: what the hub publishes reaches the web process's mirror; a web process that reconnects
// resyncs; a peer that does not read is cut off instead of making the collector queue without bound; the
// socket file is 0660; terminal requests are refused unless scenarios are allowed.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { statSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { after, test } from 'node:test';
import type { Anomaly } from '../../../schema/anomalies.ts';
import { Hub } from '../../../collector/publish/hub.ts';
import { LinkServer } from '../../../collector/service/link-server.ts';
import { ScenarioTerminals } from '../../../collector/service/terminals.ts';
import { CollectorLink } from '../../../web/server/collector-link.ts';
import { anomaly, SESSION, tempDir } from '../store/helpers.ts';

const dir = tempDir({ after });
const quiet = { warn: () => undefined, info: () => undefined };
const closers: (() => unknown)[] = [];
after(async () => {
  for (const c of closers.reverse()) await c();
});

async function setup(opts: { maxPeerBacklog?: number; allow?: boolean } = {}) {
  const hub = new Hub();
  const server = await LinkServer.listen({
    path: join(dir, `l-${Math.random().toString(36).slice(2)}.sock`),
    hub,
    gid: null,
    terminals: new ScenarioTerminals(),
    capturing: () => true,
    canRunScenarios: () => (opts.allow ? null : 'running scenarios from the page is off'),
    log: quiet,
    ...(opts.maxPeerBacklog ? { maxPeerBacklog: opts.maxPeerBacklog } : {}),
  });
  closers.push(() => server.close());
  return { hub, server };
}

test('the mirror gets the hello and then every anomaly, session and status; the socket is 0660', async () => {
  const { hub, server } = await setup();
  assert.equal(statSync(server.path).mode & 0o777, 0o660);
  hub.setSession({ ...SESSION, id: 1, startedWallMs: 1, endedWallMs: null, lostEvents: 0 });
  for (let s = 1; s <= 3; s++) hub.anomaly(anomaly(s));
  const link = new CollectorLink(server.path);
  closers.push(() => link.close());
  await link.start(5000);
  assert.deepEqual(link.anomaliesAfter(0).map((a) => a.seq), [1, 2, 3]);
  assert.equal(link.session()?.host, SESSION.host);
  const got: number[] = [];
  link.on('anomaly', (a: Anomaly) => got.push(a.seq));
  hub.anomaly(anomaly(4));
  hub.setStatus({ level: 'error', message: 'bpftrace died' });
  await once(link, 'status');
  assert.deepEqual(got, [4]);
  assert.equal(link.status()?.message, 'bpftrace died');
  assert.equal(link.firstKeptSeq(), 1);
  assert.deepEqual(link.anomaliesAfter(2, 1).map((a) => a.seq), [3]);
});

test('after the link drops, the web reconnects and resyncs with what it missed', async () => {
  const { hub, server } = await setup();
  const link = new CollectorLink(server.path);
  closers.push(() => link.close());
  await link.start(5000);
  // Cut every peer (as a collector cutting off a web process that did not read would).
  (server as unknown as { peers: Set<import('node:net').Socket> }).peers.forEach((s) => s.destroy());
  await once(link, 'status');
  assert.match(link.status()!.message, /lost its link/);
  hub.anomaly(anomaly(10)); // published while the web was away
  await once(link, 'resync');
  assert.deepEqual(link.anomaliesAfter(0).map((a) => a.seq), [10]);
});

test('a peer that never reads is cut off; the hub does not wait and does not grow', async () => {
  const { hub, server } = await setup({ maxPeerBacklog: 256 * 1024 });
  const sock = connect(server.path);
  sock.pause(); // never reads
  await once(sock, 'connect');
  const big = 'x'.repeat(4000);
  const t0 = performance.now();
  for (let s = 1; s <= 2000; s++) hub.anomaly(anomaly(s, { summary: big }));
  const ms = performance.now() - t0;
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(server.dropped, 1, 'the silent peer was disconnected');
  assert.equal(server.peerCount(), 0);
  assert.ok(ms < 2000, `publishing 2000 anomalies took ${ms} ms`);
  sock.destroy();
});

test('terminal requests are refused by the collector unless scenarios are allowed', async () => {
  const { server } = await setup({ allow: false });
  const link = new CollectorLink(server.path);
  closers.push(() => link.close());
  await link.start(5000);
  const reply = await link.startTerm('sock1', { name: 'uring-dontneed', cols: 80, rows: 24 });
  assert.deepEqual(reply, { ok: false, error: 'running scenarios from the page is off' });
});
