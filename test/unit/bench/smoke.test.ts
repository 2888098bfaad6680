// The benchmark harness end to end: `bench/run.ts --smoke` must produce every figure of bench/harness/figures.ts
// as a finite number (not any particular value), in its JSON and in its printed table. Figures that need root +
// bpftrace (overhead, method check, latency) are skipped with the reason when those are missing here — and fail
// under CI=true, where the live prerequisites are mandatory. A component that has not landed or a section that
// threw is always a failure.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { FIGURES, type Figure, type Section } from '../../../bench/harness/figures.ts';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const CI = process.env.CI === 'true';
const SMOKE_TIMEOUT_MS = 10 * 60_000;

function runSmoke(jsonFile: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const c = spawn(process.execPath, ['--import', 'tsx', 'bench/run.ts', '--smoke', '--json', jsonFile], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    c.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    c.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    // Every section at small sizes, on a host that may be shared: 10 minutes (the hypervisor section alone pins
    // 1 GiB for real and runs four synthetic 4 GiB hosts, ~1.5 min).
    const timer = setTimeout(() => {
      stderr += `\n[smoke test: killed after ${SMOKE_TIMEOUT_MS / 60_000} minutes]\n`;
      c.kill('SIGKILL');
    }, SMOKE_TIMEOUT_MS);
    c.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

test('npm run bench -- --smoke produces every figure', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'pinwatch-bench-smoke-'));
  try {
    const jsonFile = join(dir, 'smoke.json');
    const run = await runSmoke(jsonFile);
    if (!existsSync(jsonFile)) assert.fail(`the smoke bench wrote no JSON (exit ${run.code})\n${run.stderr.slice(-3000)}`);
    const doc = JSON.parse(readFileSync(jsonFile, 'utf8')) as { smoke: boolean; machine: Record<string, unknown>; figures: Figure[] };
    assert.equal(doc.smoke, true);
    assert.equal(typeof doc.machine.kernel, 'string');
    assert.deepEqual(
      doc.figures.map((f) => f.id),
      FIGURES.map((f) => f.id),
      'the JSON lists every figure, in order',
    );
    for (const spec of FIGURES) assert.ok(run.stdout.includes(`| ${spec.label} |`), `the printed table has a row for ${spec.id}`);

    const sections = [...new Set(FIGURES.map((f) => f.section))] as Section[];
    for (const section of sections) {
      await t.test(section, (st) => {
        const figs = doc.figures.filter((f) => f.section === section);
        const prereq = figs.filter((f) => f.skipKind === 'prerequisite');
        if (prereq.length) {
          const why = `${section}: ${prereq[0].skipped}`;
          if (CI) assert.fail(`CI=true and a live prerequisite is missing: ${why}`);
          st.skip(why);
          return;
        }
        for (const f of figs) {
          assert.equal(f.skipped, undefined, `${f.id} has no value: ${f.skipped}\n${run.stderr.slice(-3000)}`);
          assert.equal(typeof f.value, 'number', `${f.id} is numeric`);
          assert.ok(Number.isFinite(f.value), `${f.id} is finite (${f.value})`);
          if (f.unit === 'x') {
            // Overhead figures carry their spread and the CPU-time ratio too.
            for (const v of [f.lo, f.hi, f.cpuRatio?.value]) assert.ok(Number.isFinite(v), `${f.id}: spread and CPU-time ratio are numbers`);
            assert.ok(f.n! >= 2, `${f.id}: at least 2 pairs`);
          }
          // A figure may be measured but unable to decide its target (host noise larger than the effect): it says why.
          if (f.target && f.inconclusive === undefined) assert.equal(typeof f.met, 'boolean', `${f.id}: judged against its target`);
          if (f.inconclusive !== undefined) assert.ok(f.inconclusive.length > 0 && f.met === null, `${f.id}: inconclusive says why, no verdict`);
        }
      });
    }
    assert.equal(run.code, 0, `bench exits 0 when nothing failed\n${run.stderr.slice(-3000)}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('docs/benchmarks.md holds a table with every figure', () => {
  const doc = readFileSync(join(ROOT, 'docs/benchmarks.md'), 'utf8');
  const a = doc.indexOf('<!-- bench:table:begin -->');
  const b = doc.indexOf('<!-- bench:table:end -->');
  assert.ok(a >= 0 && b > a, 'table markers present');
  const block = doc.slice(a, b);
  for (const spec of FIGURES) assert.ok(block.includes(`| ${spec.label} |`), `docs table has a row for ${spec.id}`);
  assert.match(block, /CPU: .+/, 'the machine is described');
});
