// Building and running the scenario programs. Binaries are compiled on demand with `cc -O2 -Wall -Werror`
// into a cache outside the repo, keyed by a hash of the source (and compiler + flags), so an edited
// source is rebuilt and an unchanged one is not. Running one collects its output and its PINWATCH facts.
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { constants as fsConstants, promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { getScenario } from './catalog.ts';

/** scenarios/c/: the C sources. */
export const SCENARIO_SOURCE_DIR = path.join(path.dirname(fileURLToPath(import.meta.url)), 'c');

export const CFLAGS: readonly string[] = ['-O2', '-Wall', '-Werror'];

export interface BuildOptions {
  /** Cache root; default $PINWATCH_SCENARIO_CACHE, else $XDG_CACHE_HOME/pinwatch/scenarios, else ~/.cache/pinwatch/scenarios. */
  cacheDir?: string;
  /** Compiler; default $CC, else 'cc'. */
  cc?: string;
}

export function defaultCacheDir(env: Readonly<Record<string, string | undefined>> = process.env): string {
  if (env.PINWATCH_SCENARIO_CACHE) return env.PINWATCH_SCENARIO_CACHE;
  const base = env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache');
  return path.join(base, 'pinwatch', 'scenarios');
}

export function sourcePath(name: string): string {
  return path.join(SCENARIO_SOURCE_DIR, getScenario(name).source);
}

// Concurrent callers asking for the same binary share one compile.
const building = new Map<string, Promise<string>>();

/**
 * Compile one C file into <cacheDir>/<hash>/<binName> unless that binary already exists; returns its path.
 * The hash covers the source text, the compiler name and the flags.
 */
export async function buildSource(file: string, binName: string, opts: BuildOptions = {}): Promise<string> {
  const cc = opts.cc ?? process.env.CC ?? 'cc';
  const source = await fs.readFile(file);
  const hash = createHash('sha256').update(source).update('\0' + cc + '\0' + CFLAGS.join(' ')).digest('hex').slice(0, 16);
  const dir = path.join(opts.cacheDir ?? defaultCacheDir(), hash);
  const bin = path.join(dir, binName);
  const pending = building.get(bin);
  if (pending) return pending;
  const job = (async () => {
    try {
      await fs.access(bin, fsConstants.X_OK);
      return bin;
    } catch {
      // not built yet
    }
    await fs.mkdir(dir, { recursive: true });
    // Compile to a private name and rename: another process building the same hash never sees half a file.
    const tmp = `${bin}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
    try {
      await compile(cc, [...CFLAGS, '-o', tmp, file, ...linkLibs(source.toString('utf8'))], binName);
      await fs.rename(tmp, bin);
    } finally {
      await fs.rm(tmp, { force: true });
    }
    return bin;
  })();
  building.set(bin, job);
  try {
    return await job;
  } finally {
    building.delete(bin);
  }
}

/**
 * Libraries a program links against, from its `pinwatch-ldlibs: -lx -ly` header line (the RDMA scenarios
 * need -libverbs); none for the others. Only -l flags are taken: the line cannot inject other options.
 */
export function linkLibs(source: string): string[] {
  const m = /pinwatch-ldlibs:([^\n]*)/.exec(source);
  return m ? m[1].trim().split(/\s+/).filter((x) => /^-l[\w.+-]+$/.test(x)) : [];
}

function compile(cc: string, args: string[], what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(cc, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr.on('data', (c: Buffer) => (out += c.toString()));
    child.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') {
        reject(new Error(`C compiler '${cc}' not found: scenario '${what}' is built on demand; install gcc (apt-get install gcc) or set CC`));
      } else {
        reject(new Error(`cannot run C compiler '${cc}' for scenario '${what}': ${err.message}`));
      }
    });
    child.on('close', (code, signal) => {
      if (code === 0) resolve();
      else reject(new Error(`${cc} ${args.join(' ')} failed (${signal ?? `exit ${code}`}):\n${out.trim()}`));
    });
  });
}

/** Path of the scenario's binary, built if missing or if its source changed. */
export function buildScenario(name: string, opts: BuildOptions = {}): Promise<string> {
  return buildSource(sourcePath(name), name, opts);
}

/** argv for running the scenario elsewhere (the dashboard runs it in a pty). The programs take no arguments. */
export async function scenarioCommand(name: string, opts: BuildOptions = {}): Promise<{ file: string; args: string[] }> {
  return { file: await buildScenario(name, opts), args: [] };
}

export type Fact = Record<string, unknown>;

export interface RunOptions extends BuildOptions {
  /** Added to the inherited environment (PINWATCH_HOLD_BEFORE_MS, PINWATCH_HOLD_AFTER_MS, PINWATCH_FILE_DIR). */
  env?: Record<string, string>;
  /** Every chunk of stdout and stderr as it arrives (the programs line-buffer stdout). */
  onOutput?(chunk: string): void;
  /** Called once the process is started, with its pid (before any output). */
  onSpawn?(pid: number): void;
  /** Kill the program (SIGTERM) when aborted. */
  signal?: AbortSignal;
}

export interface RunResult {
  /** Exit status; 128 + signal number when killed by a signal. 0 ok, 1 unexpected kernel behaviour, 2 cannot run here. */
  exitCode: number;
  /** stdout and stderr interleaved in arrival order. */
  output: string;
  /** The PINWATCH fact lines, in order (lines of a forked child included: their pid differs). */
  facts: Fact[];
  pid: number;
}

export async function runScenario(name: string, opts: RunOptions = {}): Promise<RunResult> {
  const bin = await buildScenario(name, opts);
  return new Promise((resolve, reject) => {
    const child = spawn(bin, [], {
      env: { ...process.env, ...opts.env },
      stdio: ['ignore', 'pipe', 'pipe'],
      signal: opts.signal,
    });
    let output = '';
    const onData = (c: Buffer) => {
      const s = c.toString();
      output += s;
      opts.onOutput?.(s);
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.on('spawn', () => opts.onSpawn?.(child.pid!));
    child.on('error', (err: NodeJS.ErrnoException) => {
      if (err.name !== 'AbortError') reject(new Error(`cannot run scenario '${name}' (${bin}): ${err.message}`));
    });
    child.on('close', (code, signal) => {
      const exitCode = code ?? 128 + (signal ? (os.constants.signals[signal] ?? 0) : 0);
      resolve({ exitCode, output, facts: parseFacts(output), pid: child.pid ?? 0 });
    });
  });
}

export const FACT_PREFIX = 'PINWATCH ';

/** The JSON objects of all `PINWATCH {json}` lines; other lines (and malformed ones) are skipped. */
export function parseFacts(output: string): Fact[] {
  const facts: Fact[] = [];
  for (const line of output.split('\n')) {
    const start = line.indexOf(FACT_PREFIX);
    if (start !== 0) continue;
    try {
      const v: unknown = JSON.parse(line.slice(FACT_PREFIX.length));
      if (v && typeof v === 'object' && !Array.isArray(v)) facts.push(v as Fact);
    } catch {
      // a line cut by a crash: not a fact
    }
  }
  return facts;
}

/** The value of `key` in the first fact line that has it (optionally only lines of one `step`). */
export function factValue(facts: readonly Fact[], key: string, step?: string): unknown {
  for (const f of facts) {
    if (step !== undefined && f.step !== step) continue;
    if (Object.hasOwn(f, key)) return f[key];
  }
  return undefined;
}

/** A numeric fact: numbers as they are, "0x..." strings (addresses) parsed. Throws when missing or not a number. */
export function factNumber(facts: readonly Fact[], key: string, step?: string): number {
  const v = factValue(facts, key, step);
  const n = typeof v === 'number' ? v : typeof v === 'string' && /^0x[0-9a-f]+$/i.test(v) ? Number.parseInt(v, 16) : NaN;
  if (!Number.isFinite(n)) {
    throw new Error(`fact '${key}'${step ? ` (step ${step})` : ''} is ${v === undefined ? 'missing' : JSON.stringify(v)}, not a number`);
  }
  return n;
}
