// Who may talk to the dashboard, checked on every HTTP request and every socket.io handshake before anything
// else runs: the Host header must name this server (DNS rebinding: a page on evil.example whose name resolves to
// 127.0.0.1 sends `Host: evil.example`), a browser's Origin must be that same allowed host, and on a non-loopback
// bind the request must carry the access token (cookie after /login, or `Authorization: Bearer`). Every response
// gets the same security headers (CSP with a per-response script nonce and frame-ancestors 'none', nosniff, no
// framing, no referrer).
import { randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import { hostname, networkInterfaces } from 'node:os';

export const TOKEN_COOKIE = 'pinwatch_token';

/** True for 127.0.0.0/8, ::1 and IPv4-mapped loopback (the address a TCP peer or a bind has). */
export function isLoopbackAddress(addr: string | undefined | null): boolean {
  if (!addr) return false;
  const a = addr.startsWith('::ffff:') ? addr.slice(7) : addr;
  return a === '::1' || a === 'localhost' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(a);
}

/** True for the wildcard addresses (bind to every interface). */
export function isWildcardAddress(addr: string): boolean {
  return addr === '0.0.0.0' || addr === '::' || addr === '[::]';
}

/**
 * The CSP of every response. Scripts only from this origin or carrying this response's nonce: Next's App Router
 * streams its page data in inline <script> tags and gives each the nonce it finds in the request's own
 * Content-Security-Policy header (app-render getScriptNonceFromHeader), which `apply` puts there — so an injected
 * inline script does not run. Styles keep 'unsafe-inline' (React style attributes; a nonce cannot cover those).
 * What the rest buys: no framing, no plugins, no <base> hijack, forms and fetch/websocket only to this origin.
 */
export function contentSecurityPolicy(dev: boolean, nonce: string | null = null): string {
  const scripts = nonce ? `'self' 'nonce-${nonce}'` : "'self'";
  return [
    "default-src 'self'",
    `script-src ${scripts}${dev ? " 'unsafe-eval'" : ''}`,
    "style-src 'self' 'unsafe-inline'",
    "img-src 'self' data: blob:",
    "font-src 'self' data:",
    "connect-src 'self'",
    "object-src 'none'",
    "base-uri 'self'",
    "form-action 'self'",
    "frame-ancestors 'none'",
  ].join('; ');
}

export function securityHeaders(dev: boolean, tls: boolean, nonce: string | null = null): Record<string, string> {
  const h: Record<string, string> = {
    'Content-Security-Policy': contentSecurityPolicy(dev, nonce),
    'X-Content-Type-Options': 'nosniff',
    'X-Frame-Options': 'DENY',
    'Referrer-Policy': 'no-referrer',
    'Cross-Origin-Opener-Policy': 'same-origin',
    'Cross-Origin-Resource-Policy': 'same-origin',
  };
  if (tls) h['Strict-Transport-Security'] = 'max-age=31536000';
  return h;
}

export interface GuardOptions {
  /** The address the server is bound to (as given to listen). */
  bindHost: string;
  /** The port it listens on (after listen: the real one when 0 was asked). */
  port: number;
  /** Extra names clients may use in the Host header (--allowed-host), e.g. the host's DNS name behind TLS. */
  allowedHosts?: string[];
  /** Required from every client (non-loopback binds); null: no token. */
  token: string | null;
  tls: boolean;
  dev?: boolean;
}

export type Refusal = { status: number; reason: string } | null;

/** Host name of a Host header or URL host, lower case, without port and brackets. */
export function hostnameOf(host: string): string | null {
  const m = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9._-]+)(?::(\d{1,5}))?$/.exec(host.trim());
  if (!m) return null;
  return m[1]!.replace(/^\[|\]$/g, '').toLowerCase().replace(/\.$/, '');
}

function portOf(host: string): number | null {
  const m = /:(\d{1,5})$/.exec(host.trim());
  return m && !host.trim().endsWith(']') ? Number(m[1]) : null;
}

export class RequestGuard {
  private readonly names = new Set<string>();
  private readonly opts: GuardOptions;
  readonly headers: Record<string, string>;
  private readonly tokenBuf: Buffer | null;

  constructor(opts: GuardOptions) {
    this.opts = { ...opts };
    this.headers = securityHeaders(opts.dev ?? false, opts.tls);
    this.tokenBuf = opts.token ? Buffer.from(opts.token) : null;
    for (const n of ['localhost', '127.0.0.1', '::1']) this.names.add(n);
    for (const n of opts.allowedHosts ?? []) {
      const h = hostnameOf(n);
      if (h) this.names.add(h);
    }
    const bind = opts.bindHost.replace(/^\[|\]$/g, '').toLowerCase();
    if (isWildcardAddress(opts.bindHost)) {
      // Bound everywhere: the host's own addresses and name are its names (a rebinding name never is).
      for (const list of Object.values(networkInterfaces())) for (const i of list ?? []) this.names.add(i.address.toLowerCase().replace(/%.*$/, ''));
      this.names.add(hostname().toLowerCase());
    } else this.names.add(bind);
  }

  /** The names a Host header may carry (for messages and tests). */
  allowedNames(): string[] {
    return [...this.names];
  }

  /** The real port once listening (port 0 asks the kernel for one). */
  setPort(port: number): void {
    this.opts.port = port;
  }

  hostAllowed(hostHeader: string | undefined): boolean {
    if (!hostHeader) return false;
    const name = hostnameOf(hostHeader);
    if (name === null || !this.names.has(name)) return false;
    const port = portOf(hostHeader);
    // A missing port means the scheme's default; then the server must be on it.
    const want = port ?? (this.opts.tls ? 443 : 80);
    return want === this.opts.port;
  }

  /** A browser's Origin (when sent) must be this server as the browser addressed it: scheme and Host alike. */
  originAllowed(req: IncomingMessage): boolean {
    const origin = req.headers.origin;
    if (origin === undefined) return true; // not a cross-origin browser request (curl, Prometheus, same-origin GET)
    let url: URL;
    try {
      url = new URL(origin);
    } catch {
      return false;
    }
    if (url.protocol !== (this.opts.tls ? 'https:' : 'http:')) return false;
    return url.host.toLowerCase() === String(req.headers.host ?? '').toLowerCase() && this.hostAllowed(url.host);
  }

  /** The token from the cookie or an Authorization: Bearer header matches (always true without a token). */
  authorized(req: IncomingMessage): boolean {
    if (!this.tokenBuf) return true;
    const bearer = /^Bearer\s+(\S+)$/i.exec(String(req.headers.authorization ?? ''))?.[1];
    const given = bearer ?? cookieValue(req.headers.cookie, TOKEN_COOKIE);
    return given !== null && this.tokenMatches(given);
  }

  tokenMatches(given: string): boolean {
    if (!this.tokenBuf) return true;
    const b = Buffer.from(given);
    return b.length === this.tokenBuf.length && timingSafeEqual(b, this.tokenBuf);
  }

  /** Why this request must be refused, or null. `/login` needs no token (it is how a browser gets one). */
  check(req: IncomingMessage, path: string): Refusal {
    if (!this.hostAllowed(req.headers.host)) {
      return { status: 421, reason: `Host ${JSON.stringify(req.headers.host ?? '')} is not a name of this server (allowed: ${this.allowedNames().join(', ')}; add one with --allowed-host)` };
    }
    if (!this.originAllowed(req)) return { status: 403, reason: 'cross-origin request refused' };
    if (path !== '/login' && !this.authorized(req)) return { status: 401, reason: 'this dashboard needs its access token: open /login?token=… once (the token was printed at first start; see --token-file)' };
    return null;
  }

  /** Sets the security headers (before Next or the API write anything). */
  /**
   * The security headers on a response. With the request, a fresh nonce per response: the CSP names it, and the
   * request carries the same policy to Next, which puts the nonce on the inline scripts it renders.
   */
  apply(res: ServerResponse, req?: IncomingMessage): void {
    for (const [k, v] of Object.entries(this.headers)) res.setHeader(k, v);
    if (!req) return;
    const csp = contentSecurityPolicy(this.opts.dev ?? false, randomBytes(16).toString('base64'));
    res.setHeader('Content-Security-Policy', csp);
    req.headers['content-security-policy'] = csp;
  }

  /** For socket.io's handshake responses (engine 'initial_headers' / 'headers'). */
  addTo(headers: OutgoingHttpHeaders): void {
    Object.assign(headers, this.headers);
  }

  /** GET /login?token=…: sets the cookie and sends the browser to the dashboard; a wrong token is a 401. */
  login(req: IncomingMessage, res: ServerResponse, url: URL): void {
    const given = url.searchParams.get('token') ?? '';
    if (!this.tokenBuf || !this.tokenMatches(given)) {
      res.writeHead(this.tokenBuf ? 401 : 404, { 'content-type': 'text/plain; charset=utf-8' });
      res.end(this.tokenBuf ? 'wrong token\n' : 'this server needs no token (loopback bind)\n');
      return;
    }
    const secure = this.opts.tls ? '; Secure' : '';
    res.writeHead(303, {
      'set-cookie': `${TOKEN_COOKIE}=${given}; Path=/; HttpOnly; SameSite=Strict; Max-Age=2592000${secure}`,
      location: '/',
      'cache-control': 'no-store',
    });
    res.end();
  }
}

export function cookieValue(header: string | undefined, name: string): string | null {
  if (!header) return null;
  for (const part of header.split(';')) {
    const i = part.indexOf('=');
    if (i > 0 && part.slice(0, i).trim() === name) return part.slice(i + 1).trim();
  }
  return null;
}

/** Counts live connections per client address; refuses beyond `max` (a page needs one; tabs add one each). */
export class PerClientLimit {
  private readonly counts = new Map<string, number>();
  constructor(readonly max: number) {}

  tryAcquire(addr: string): boolean {
    const n = this.counts.get(addr) ?? 0;
    if (n >= this.max) return false;
    this.counts.set(addr, n + 1);
    return true;
  }

  release(addr: string): void {
    const n = (this.counts.get(addr) ?? 1) - 1;
    if (n <= 0) this.counts.delete(addr);
    else this.counts.set(addr, n);
  }

  count(addr: string): number {
    return this.counts.get(addr) ?? 0;
  }
}
