// The unprivileged user the web process runs as when pinwatch is started as root: --user NAME, else a
// `pinwatch` system user when one exists (deploy/systemd creates it), else `nobody`. Looked up in /etc/passwd
// (Node has no getpwnam; NSS-only users need --user with a name that is in /etc/passwd).
import { readFileSync } from 'node:fs';

export interface UnprivilegedUser {
  name: string;
  uid: number;
  gid: number;
}

export function lookupUser(name: string, passwd = '/etc/passwd'): UnprivilegedUser | null {
  let text: string;
  try {
    text = readFileSync(passwd, 'utf8');
  } catch {
    return null;
  }
  for (const line of text.split('\n')) {
    const f = line.split(':');
    if (f[0] === name && f.length >= 4) {
      const uid = Number(f[2]);
      const gid = Number(f[3]);
      if (Number.isInteger(uid) && Number.isInteger(gid)) return { name, uid, gid };
    }
  }
  return null;
}

/** Who the web process becomes; null when not root (it already runs unprivileged). Throws for a bad --user. */
export function webUser(requested: string | undefined, isRoot = process.getuid?.() === 0): UnprivilegedUser | null {
  if (!isRoot) return null;
  if (requested) {
    const u = lookupUser(requested);
    if (!u) throw Object.assign(new Error(`--user ${requested}: no such user in /etc/passwd`), { fix: `create it (useradd --system ${requested}) or name another with --user` });
    if (u.uid === 0) throw Object.assign(new Error(`--user ${requested} is root`), { fix: 'name an unprivileged user' });
    return u;
  }
  const u = lookupUser('pinwatch') ?? lookupUser('nobody');
  if (!u) throw Object.assign(new Error('neither a pinwatch nor a nobody user exists'), { fix: 'create one: useradd --system --no-create-home pinwatch' });
  return u;
}
