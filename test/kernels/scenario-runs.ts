// The catalog scenarios in the kernel guests: built on the host into the run's output share (the guest's
// /root is a tmpfs, and cc under TCG is slow), listed for test/kernels/guest-run.sh, and read back after
// the run (sc-<name>.txt: the program's output, then "rc=N").
import { existsSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { SCENARIOS, buildScenario, factValue, parseFacts, type Fact } from '../../scenarios/index.ts';

/** Builds every catalog scenario into OUT/scen, writes OUT/scenarios.list ("NAME BINARY" lines, paths relative to OUT), drops the last run's scenario outputs. */
export async function writeScenarioList(out: string): Promise<void> {
  const lines: string[] = [];
  for (const s of SCENARIOS) {
    const bin = await buildScenario(s.name, { cacheDir: join(out, 'scen') });
    lines.push(`${s.name} ${relative(out, bin)}`);
  }
  writeFileSync(join(out, 'scenarios.list'), lines.join('\n') + '\n');
  // a guest run that dies half-way must not leave the previous run's results to be judged
  for (const f of readdirSync(out)) {
    if (/^sc-.*\.txt$/.test(f) || /^pinwatch\.db/.test(f) || f === 'wl-record-collapse.txt' || f === 'fs.txt' || /^nested-qemu\./.test(f) || f === 'rdma.txt') rmSync(join(out, f));
  }
}

export interface ScenarioRun {
  exitCode: number;
  output: string;
  facts: Fact[];
  /** The scenario's main process (its "start" fact; a forked child prints facts under its own pid). */
  pid: number;
}

/** What the guest recorded for one scenario, or null when it did not run. */
export function readScenarioRun(out: string, name: string): ScenarioRun | null {
  const file = join(out, `sc-${name}.txt`);
  if (!existsSync(file)) return null;
  const output = readFileSync(file, 'utf8');
  const rc = /^rc=(\d+)$/m.exec(output);
  const facts = parseFacts(output);
  return { exitCode: rc ? Number(rc[1]) : -1, output, facts, pid: Number(factValue(facts, 'pid', 'start') ?? -1) };
}

export interface PinnedPfns {
  source: 'io_uring' | 'vmsplice' | 'vfio' | 'rdma';
  /** The pinned buffer's start address. */
  addr: number;
  /** pfn of each pinned page from the program's own pagemap read right after the pin (a prefix of the buffer). */
  pfns: number[];
}

const addrOf = (v: unknown): number => Number(BigInt(v as string));

/** The pfns a scenario read from its own pagemap right after its pin succeeded, or null if it pinned nothing. */
export function pinnedPfns(name: string, facts: readonly Fact[]): PinnedPfns | null {
  const pinned = facts.find((f) => f.step === 'pinned');
  if (name === 'vmsplice-pageout') {
    return pinned ? { source: 'vmsplice', addr: addrOf(pinned.buf), pfns: [pinned.pfn_before as number] } : null;
  }
  if (pinned && Array.isArray(pinned.pfns)) return { source: name.startsWith('vfio-') ? 'vfio' : name.startsWith('rdma-') ? 'rdma' : 'io_uring', addr: addrOf(pinned.buf), pfns: pinned.pfns as number[] };
  // uring-file-shared pins only where the kernel grants it; its mapped fact has page 0's pfn
  const granted = facts.find((f) => f.step === 'register' && f.granted === true);
  const mapped = facts.find((f) => f.step === 'mapped');
  if (granted && mapped) return { source: 'io_uring', addr: addrOf(mapped.buf), pfns: [mapped.pfn0 as number] };
  return null;
}
