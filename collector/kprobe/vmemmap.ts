// vmemmap base calibration: kprobe scripts turn struct page / struct folio pointers into pfns as
// (ptr - vmemmap_base) / sizeof(struct page). The base is randomised (CONFIG_RANDOMIZE_MEMORY, every
// Debian kernel), so it is measured at start-up from tracepoint:pagemap:mm_lru_insertion, which prints
// both a page/folio pointer and its pfn: base = ptr - pfn * sizeof(struct page). Several samples must
// agree. The result is cached per boot (boot_id) in the temp dir: it cannot change until reboot.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** x86-64 vmemmap base without KASLR memory randomisation (4-level paging). */
export const VMEMMAP_BASE_DEFAULT = 0xffffea0000000000n;

export interface VmemmapCalibration {
  base: bigint;
  pageStructSize: number;
  method: 'mm_lru_insertion' | 'cached' | 'default';
  samples: number;
  ms: number;
}

/** base from (pointer, pfn) samples; throws unless they all agree. */
export function baseFromSamples(samples: { ptr: bigint; pfn: bigint }[], pageStructSize: number): bigint {
  if (samples.length === 0) throw new Error('no mm_lru_insertion samples');
  const bases = new Set(samples.map((s) => s.ptr - s.pfn * BigInt(pageStructSize)));
  if (bases.size !== 1) throw new Error(`vmemmap samples disagree: ${[...bases].map((b) => b.toString(16)).join(' ')}`);
  return [...bases][0];
}

/** "ffff… pfn" lines printed by the calibration script. */
export function parseSamples(text: string): { ptr: bigint; pfn: bigint }[] {
  const out: { ptr: bigint; pfn: bigint }[] = [];
  for (const line of text.split('\n')) {
    const m = /^pwcal\s+(\d+)\s+(\d+)\s*$/.exec(line.trim());
    if (m) out.push({ ptr: BigInt(m[1]), pfn: BigInt(m[2]) });
  }
  return out;
}

function tracepointField(): string {
  for (const root of ['/sys/kernel/tracing', '/sys/kernel/debug/tracing']) {
    const f = join(root, 'events/pagemap/mm_lru_insertion/format');
    try {
      const fmt = readFileSync(f, 'utf8');
      if (/struct folio \* folio;/.test(fmt)) return 'folio';
      if (/struct page \* page;/.test(fmt)) return 'page';
    } catch { /* try next */ }
  }
  return 'folio';
}

function bootId(): string {
  try { return readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim(); } catch { return 'unknown'; }
}

export interface CalibrateOptions {
  bpftrace?: string;
  pageStructSize?: number;
  timeoutMs?: number;
  /** skip the per-boot cache */
  fresh?: boolean;
}

export async function calibrateVmemmap(opts: CalibrateOptions = {}): Promise<VmemmapCalibration> {
  const t0 = Date.now();
  const size = opts.pageStructSize ?? 64;
  const cacheFile = join(tmpdir(), `pinwatch-vmemmap-${bootId()}`);
  if (!opts.fresh && existsSync(cacheFile)) {
    const [b, s] = readFileSync(cacheFile, 'utf8').trim().split(' ');
    if (Number(s) === size) return { base: BigInt(b), pageStructSize: size, method: 'cached', samples: 0, ms: Date.now() - t0 };
  }
  const field = tracepointField();
  const script =
    `tracepoint:pagemap:mm_lru_insertion { printf("pwcal %llu %llu\\n", (uint64)args->${field}, args->pfn); @n++;` +
    ` if (@n >= 16) { exit(); } }\nEND { clear(@n); }\n`;
  const out = await runWithActivity(opts.bpftrace ?? 'bpftrace', script, opts.timeoutMs ?? 60_000);
  const samples = parseSamples(out);
  const base = baseFromSamples(samples, size);
  try { writeFileSync(cacheFile, `${base} ${size}\n`); } catch { /* cache is an optimisation */ }
  return { base, pageStructSize: size, method: 'mm_lru_insertion', samples: samples.length, ms: Date.now() - t0 };
}

/** Run bpftrace and, once it is attached, make LRU insertions happen (write a file, touch anon memory). */
function runWithActivity(bpftrace: string, script: string, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const dir = mkdtempSync(join(tmpdir(), 'pinwatch-cal-'));
    const child = spawn(bpftrace, ['-B', 'line', '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    let poke: NodeJS.Timeout | undefined;
    const timer = setTimeout(() => child.kill('SIGINT'), timeoutMs);
    const activity = (): void => {
      const f = join(dir, 'f');
      writeFileSync(f, Buffer.alloc(4 << 20, 1));
      rmSync(f, { force: true });
      Buffer.alloc(4 << 20, 1).fill(2);
    };
    // Poke from the start: bpftrace may take seconds to attach (TCG guests); pages keep being inserted.
    poke = setInterval(activity, 500);
    child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { err += d.toString(); });
    child.on('error', (e) => { clearTimeout(timer); reject(e); });
    child.on('close', (code) => {
      clearTimeout(timer);
      if (poke) clearInterval(poke);
      rmSync(dir, { recursive: true, force: true });
      if (parseSamples(out).length > 0) resolve(out);
      else reject(new Error(`vmemmap calibration failed (bpftrace exit ${code}): ${err.trim().split('\n').slice(-2).join(' ')}`));
    });
  });
}
