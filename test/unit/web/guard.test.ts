// The request guard: Host header against DNS rebinding, Origin, the access token, security headers, and the
// per-client connection cap.
import assert from 'node:assert/strict';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { describe, test } from 'node:test';
import { hostnameOf, isLoopbackAddress, PerClientLimit, RequestGuard, TOKEN_COOKIE } from '../../../web/server/guard.ts';

function req(headers: Record<string, string>): IncomingMessage {
  return { headers } as unknown as IncomingMessage;
}

describe('RequestGuard', () => {
  const loop = new RequestGuard({ bindHost: '127.0.0.1', port: 3000, token: null, tls: false });

  test('a loopback bind answers to localhost names on its port only', () => {
    for (const h of ['127.0.0.1:3000', 'localhost:3000', 'LOCALHOST:3000', '[::1]:3000']) assert.equal(loop.hostAllowed(h), true, h);
    for (const h of ['evil.example:3000', 'evil.example', '127.0.0.1:80', '127.0.0.1', 'localhost.evil.example:3000', '', '127.0.0.1:3000:1']) {
      assert.equal(loop.hostAllowed(h), false, h);
    }
    assert.equal(loop.hostAllowed(undefined), false);
  });

  test('DNS rebinding: Host and Origin both the attacker\'s name is refused with 421', () => {
    const r = loop.check(req({ host: 'rebind.evil.example:3000', origin: 'http://rebind.evil.example:3000' }), '/api/export');
    assert.equal(r?.status, 421);
    assert.match(r!.reason, /not a name of this server/);
  });

  test('Origin must be this server as addressed', () => {
    assert.equal(loop.check(req({ host: '127.0.0.1:3000' }), '/'), null, 'no Origin: curl, same-origin GET');
    assert.equal(loop.check(req({ host: '127.0.0.1:3000', origin: 'http://127.0.0.1:3000' }), '/'), null);
    assert.equal(loop.check(req({ host: '127.0.0.1:3000', origin: 'http://localhost:3000' }), '/')?.status, 403, 'another allowed name is still another origin');
    assert.equal(loop.check(req({ host: '127.0.0.1:3000', origin: 'https://127.0.0.1:3000' }), '/')?.status, 403, 'scheme differs');
    assert.equal(loop.check(req({ host: '127.0.0.1:3000', origin: 'null' }), '/')?.status, 403);
    assert.equal(loop.check(req({ host: '127.0.0.1:3000', origin: 'http://evil.example' }), '/')?.status, 403);
  });

  test('configured names are allowed; a named bind answers to its address', () => {
    const g = new RequestGuard({ bindHost: '10.0.0.5', port: 8443, allowedHosts: ['Pinwatch.Example.org'], token: 't'.repeat(20), tls: true });
    assert.equal(g.hostAllowed('pinwatch.example.org:8443'), true);
    assert.equal(g.hostAllowed('10.0.0.5:8443'), true);
    assert.equal(g.hostAllowed('10.0.0.6:8443'), false);
    assert.equal(g.hostAllowed('pinwatch.example.org'), false, 'default https port is not 8443');
  });

  test('a token is needed everywhere but /login, from the cookie or a Bearer header', () => {
    const token = 'abcdefghijklmnopqrstuvwxyz012345';
    const g = new RequestGuard({ bindHost: '10.0.0.5', port: 3000, token, tls: false });
    const host = '10.0.0.5:3000';
    assert.equal(g.check(req({ host }), '/')?.status, 401);
    assert.equal(g.check(req({ host }), '/metrics')?.status, 401);
    assert.equal(g.check(req({ host }), '/login'), null);
    assert.equal(g.check(req({ host, cookie: `a=b; ${TOKEN_COOKIE}=${token}` }), '/'), null);
    assert.equal(g.check(req({ host, authorization: `Bearer ${token}` }), '/metrics'), null);
    assert.equal(g.check(req({ host, authorization: `Bearer ${token}x` }), '/metrics')?.status, 401);
    assert.equal(g.check(req({ host, cookie: `${TOKEN_COOKIE}=${token.slice(1)}` }), '/')?.status, 401);
  });

  test('security headers: CSP with frame-ancestors none, nosniff, no framing, no referrer', () => {
    const h = loop.headers;
    assert.match(h['Content-Security-Policy']!, /frame-ancestors 'none'/);
    assert.match(h['Content-Security-Policy']!, /connect-src 'self'/);
    assert.match(h['Content-Security-Policy']!, /object-src 'none'/);
    assert.equal(h['X-Content-Type-Options'], 'nosniff');
    assert.equal(h['X-Frame-Options'], 'DENY');
    assert.equal(h['Referrer-Policy'], 'no-referrer');
  });

  test('per response: a fresh script nonce, no unsafe-inline for scripts, the same policy handed to Next on the request', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 3; i++) {
      const headers: Record<string, string> = {};
      const res = { setHeader: (k: string, v: string) => (headers[k] = v) } as unknown as ServerResponse;
      const r = req({ host: '127.0.0.1:3000' });
      loop.apply(res, r);
      const csp = headers['Content-Security-Policy']!;
      const nonce = /script-src 'self' 'nonce-([A-Za-z0-9+/=]{24})'(;|$)/.exec(csp)?.[1];
      assert.ok(nonce, csp);
      assert.doesNotMatch(csp.split('; ').find((d) => d.startsWith('script-src'))!, /unsafe-inline/);
      assert.equal(r.headers['content-security-policy'], csp, 'Next reads the nonce from the request');
      seen.add(nonce);
    }
    assert.equal(seen.size, 3);
  });
});

test('hostnameOf and isLoopbackAddress', () => {
  assert.equal(hostnameOf('[::1]:3000'), '::1');
  assert.equal(hostnameOf('Example.COM.:80'), 'example.com');
  assert.equal(hostnameOf('a b'), null);
  assert.equal(hostnameOf('evil.example:3000/x'), null);
  for (const a of ['127.0.0.1', '127.3.2.1', '::1', '::ffff:127.0.0.1']) assert.equal(isLoopbackAddress(a), true, a);
  for (const a of ['0.0.0.0', '::', '10.0.0.1', '::ffff:10.0.0.1', '', undefined]) assert.equal(isLoopbackAddress(a), false, String(a));
});

test('PerClientLimit caps connections per address and frees them', () => {
  const l = new PerClientLimit(2);
  assert.equal(l.tryAcquire('a'), true);
  assert.equal(l.tryAcquire('a'), true);
  assert.equal(l.tryAcquire('a'), false);
  assert.equal(l.tryAcquire('b'), true);
  l.release('a');
  assert.equal(l.tryAcquire('a'), true);
});
