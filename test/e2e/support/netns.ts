// Network namespaces for the fleet test: each one a "host" reached from the root namespace over its own veth
// pair (10.N.i.1 here, 10.N.i.2 there). Processes are started in it with nsenter --net (only the network
// namespace: `ip netns exec` would also remount /sys and hide tracefs from bpftrace).
import { execFileSync, spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';

export interface NetNs {
  name: string;
  /** Address of the namespace side (where its server listens). */
  addr: string;
  /** Address of the root-namespace side. */
  peer: string;
}

const ip = (...args: string[]) => execFileSync('ip', args, { stdio: 'pipe' });

/** Creates the namespace with a veth pair and addresses; the caller removes it with removeNetNs. */
export function createNetNs(tag: string, index: number): NetNs {
  const net = 100 + (process.pid % 100);
  const name = `pwf-${tag}-${index}`;
  const host = `pwf${process.pid % 100000}${index}h`;
  const inside = `pwf${process.pid % 100000}${index}n`;
  const ns: NetNs = { name, addr: `10.${net}.${index}.2`, peer: `10.${net}.${index}.1` };
  removeNetNs(ns); // a namespace left by a killed earlier run of this pid
  ip('netns', 'add', name);
  ip('link', 'add', host, 'type', 'veth', 'peer', 'name', inside);
  ip('link', 'set', inside, 'netns', name);
  ip('addr', 'add', `${ns.peer}/30`, 'dev', host);
  ip('link', 'set', host, 'up');
  ip('-n', name, 'addr', 'add', `${ns.addr}/30`, 'dev', inside);
  ip('-n', name, 'link', 'set', inside, 'up');
  ip('-n', name, 'link', 'set', 'lo', 'up');
  return ns;
}

/** Deleting the namespace deletes its veth end, and with it the pair. */
export function removeNetNs(ns: NetNs): void {
  try {
    ip('netns', 'del', ns.name);
  } catch {
    // not there
  }
}

export function spawnInNetNs(ns: NetNs, cmd: string, args: string[], opts: SpawnOptions): ChildProcess {
  return spawn('nsenter', [`--net=/run/netns/${ns.name}`, '--', cmd, ...args], opts);
}
