// Production build of the dashboard on demand: serve() runs `next build web` when web/.next is missing or was
// built from other sources (a content hash of everything that goes into the bundle), so `npm start` works on a
// fresh checkout after `npm ci` without a dev server. A lock directory keeps two servers from building at once.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const WEB_DIR = join(REPO_ROOT, 'web');
const DIST_DIR = join(WEB_DIR, '.next');
const STAMP = join(DIST_DIR, 'pinwatch-build.json');
const LOCK = join(WEB_DIR, '.next-build.lock');
const LOCK_STALE_MS = 15 * 60_000;

/**
 * Environment for Next in this project. NEXT_IGNORE_INCORRECT_LOCKFILE: without it Next tries to "patch"
 * package-lock.json with its platform swc packages by querying the npm registry on every build/dev start
 * (slow offline, and it must not rewrite the shared lockfile). Telemetry off: no network calls.
 */
export const NEXT_ENV = { NEXT_IGNORE_INCORRECT_LOCKFILE: '1', NEXT_TELEMETRY_DISABLED: '1' } as const;

/** Everything the browser bundle is built from. web/server is not bundled (the custom server runs it with tsx). */
const INPUTS = ['next.config.js', 'web/next.config.js', 'web/tsconfig.json', 'web/app', 'web/components', 'web/shared', 'schema'];
const SOURCE_EXT = /\.(tsx?|jsx?|css|json|svg|ico|png)$/;

function walk(path: string, out: string[]): void {
  let st;
  try {
    st = statSync(path);
  } catch {
    return;
  }
  if (st.isDirectory()) {
    for (const name of readdirSync(path).sort()) if (!name.startsWith('.') && name !== 'node_modules') walk(join(path, name), out);
  } else if (SOURCE_EXT.test(path)) out.push(path);
}

/** Hash of the bundle's inputs plus the Next.js version: equal hashes mean the existing build is current. */
export function sourceFingerprint(): string {
  const h = createHash('sha256');
  const require = createRequire(import.meta.url);
  h.update(`next ${(require('next/package.json') as { version: string }).version}\n`);
  const files: string[] = [];
  for (const input of INPUTS) walk(join(REPO_ROOT, input), files);
  for (const f of files) {
    h.update(relative(REPO_ROOT, f));
    h.update('\0');
    h.update(readFileSync(f));
    h.update('\0');
  }
  return h.digest('hex');
}

interface Stamp {
  fingerprint: string;
  builtAt: string;
  buildMs: number;
}

function readStamp(): Stamp | null {
  try {
    if (!existsSync(join(DIST_DIR, 'BUILD_ID'))) return null;
    return JSON.parse(readFileSync(STAMP, 'utf8')) as Stamp;
  } catch {
    return null;
  }
}

export function buildIsCurrent(): boolean {
  return readStamp()?.fingerprint === sourceFingerprint();
}

function holderAlive(): boolean {
  try {
    const pid = Number(readFileSync(join(LOCK, 'pid'), 'utf8'));
    if (!Number.isInteger(pid) || pid <= 0) return true; // being written: assume alive for now
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // ESRCH: the builder died (killed mid-build); EPERM: alive but not ours; no pid file yet: alive.
    const code = (err as NodeJS.ErrnoException).code;
    return code !== 'ESRCH';
  }
}

async function acquireLock(log: (msg: string) => void): Promise<() => void> {
  const deadline = Date.now() + LOCK_STALE_MS;
  let said = false;
  for (;;) {
    try {
      mkdirSync(LOCK);
      writeFileSync(join(LOCK, 'pid'), String(process.pid));
      return () => rmSync(LOCK, { recursive: true, force: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      let age = 0;
      try {
        age = Date.now() - statSync(LOCK).mtimeMs;
      } catch {
        continue;
      }
      if (!holderAlive() || age > LOCK_STALE_MS || Date.now() > deadline) {
        rmSync(LOCK, { recursive: true, force: true });
        continue;
      }
      if (!said) log('another pinwatch is building the dashboard; waiting');
      said = true;
      await new Promise((r) => setTimeout(r, 500));
    }
  }
}

export interface BuildResult {
  built: boolean;
  ms: number;
}

/** Builds web/ with `next build` unless the current build matches the sources. Throws with Next's output on failure. */
export async function ensureWebBuild(log: (msg: string) => void = () => {}): Promise<BuildResult> {
  const fingerprint = sourceFingerprint();
  if (readStamp()?.fingerprint === fingerprint) return { built: false, ms: 0 };
  const release = await acquireLock(log);
  try {
    if (readStamp()?.fingerprint === fingerprint) return { built: false, ms: 0 };
    log(existsSync(join(DIST_DIR, 'BUILD_ID')) ? 'dashboard sources changed: rebuilding (next build)' : 'first start: building the dashboard (next build)');
    const started = Date.now();
    const require = createRequire(import.meta.url);
    const nextBin = require.resolve('next/dist/bin/next');
    const output: string[] = [];
    const code = await new Promise<number | null>((resolve, reject) => {
      const child = spawn(process.execPath, [nextBin, 'build', WEB_DIR], {
        cwd: REPO_ROOT,
        env: { ...process.env, ...NEXT_ENV, NODE_ENV: 'production' },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      const keep = (chunk: Buffer) => {
        output.push(chunk.toString('utf8'));
        if (output.length > 400) output.splice(0, output.length - 400);
      };
      child.stdout.on('data', keep);
      child.stderr.on('data', keep);
      child.once('error', reject);
      child.once('exit', (c) => resolve(c));
    });
    const ms = Date.now() - started;
    if (code !== 0) throw new Error(`next build failed (exit ${code}) after ${ms} ms:\n${output.join('')}`);
    const stamp: Stamp = { fingerprint, builtAt: new Date().toISOString(), buildMs: ms };
    writeFileSync(STAMP, JSON.stringify(stamp, null, 2) + '\n');
    log(`dashboard built in ${(ms / 1000).toFixed(1)} s`);
    return { built: true, ms };
  } finally {
    release();
  }
}

/** `node --import tsx web/server/build.ts [--force]`: build ahead of time (CI, packaging). */
if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  if (process.argv.includes('--force')) rmSync(STAMP, { force: true });
  ensureWebBuild((m) => console.log(m)).then(
    (r) => console.log(r.built ? `built in ${r.ms} ms` : 'build is current'),
    (err: Error) => {
      console.error(err.message);
      process.exit(1);
    },
  );
}
