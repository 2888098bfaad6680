// The dashboard's access token for non-loopback binds: generated on first start (32 random bytes, base64url),
// stored mode 0600 in the state directory (or --token-file), printed once when it is created. A token file
// that others can read is refused: whoever reads it can open the dashboard.
import { randomBytes } from 'node:crypto';
import { chmodSync, closeSync, existsSync, mkdirSync, openSync, readFileSync, statSync, writeSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';

export class TokenFileError extends Error {
  constructor(
    message: string,
    readonly fix: string,
  ) {
    super(message);
    this.name = 'TokenFileError';
  }
}

/** Where pinwatch keeps state: systemd's StateDirectory=, /var/lib/pinwatch as root, else ~/.local/state/pinwatch. */
export function stateDir(env: Record<string, string | undefined> = process.env): string {
  const fromSystemd = env.STATE_DIRECTORY?.split(':')[0];
  if (fromSystemd) return fromSystemd;
  if (process.getuid?.() === 0) return '/var/lib/pinwatch';
  return join(env.XDG_STATE_HOME || join(homedir(), '.local', 'state'), 'pinwatch');
}

export interface AccessToken {
  token: string;
  file: string;
  /** True when this start created it (the banner prints it this once). */
  created: boolean;
}

const TOKEN_RE = /^[A-Za-z0-9_-]{16,256}$/;

export function loadOrCreateToken(file: string = join(stateDir(), 'token')): AccessToken {
  if (existsSync(file)) {
    const st = statSync(file);
    if (!st.isFile()) throw new TokenFileError(`token file ${file} is not a regular file`, `remove it, or name another with --token-file`);
    if ((st.mode & 0o077) !== 0) {
      throw new TokenFileError(`token file ${file} can be read by other users (mode ${(st.mode & 0o777).toString(8)})`, `chmod 600 ${file}`);
    }
    const token = readFileSync(file, 'utf8').trim();
    if (!TOKEN_RE.test(token)) throw new TokenFileError(`token file ${file} does not hold a token (16-256 characters of A-Z a-z 0-9 _ -)`, `remove it to have a new one generated`);
    return { token, file, created: false };
  }
  try {
    mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  } catch (err) {
    throw new TokenFileError(`cannot create ${dirname(file)}: ${(err as Error).message}`, 'name a writable place with --token-file');
  }
  const token = randomBytes(32).toString('base64url');
  let fd: number;
  try {
    // O_EXCL: two servers starting at once never overwrite each other's token.
    fd = openSync(file, 'wx', 0o600);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return loadOrCreateToken(file);
    throw new TokenFileError(`cannot write the token file ${file}: ${(err as Error).message}`, 'name a writable place with --token-file');
  }
  try {
    writeSync(fd, `${token}\n`);
  } finally {
    closeSync(fd);
  }
  chmodSync(file, 0o600);
  return { token, file, created: true };
}
