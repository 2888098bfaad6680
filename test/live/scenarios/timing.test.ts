// The timing contract a live collector relies on, measured on a real run (root): hold 300 ms after the pin,
// keep the pin 1500 ms after the hazard, lines arrive when printed (not at exit), the holds can be changed
// through the environment, and runScenario reports the pid and can stop a run.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { factNumber, parseFacts, runScenario } from '../../../scenarios/index.ts';
import { rootGate } from './root-gate.ts';

const MS = 1e6;
const now = () => Number(process.hrtime.bigint()); // CLOCK_MONOTONIC ns, the clock of t_*_ns facts

/** Runs a scenario, noting when (CLOCK_MONOTONIC ns) each fact line's step arrived. */
async function timedRun(name: string, env: Record<string, string> = {}) {
  const arrived = new Map<string, number>();
  let pending = '';
  let spawnedPid = 0;
  const r = await runScenario(name, {
    env,
    onSpawn: (pid) => (spawnedPid = pid),
    onOutput(chunk) {
      const t = now();
      pending += chunk;
      const lines = pending.split('\n');
      pending = lines.pop()!;
      for (const f of parseFacts(lines.join('\n'))) if (!arrived.has(String(f.step))) arrived.set(String(f.step), t);
    },
  });
  return { ...r, arrived, spawnedPid, exitedAt: now() };
}

describe('scenario timing contract (live, root)', rootGate(), () => {
  test('defaults: 300 ms between pin and hazard, 1500 ms of live pin after it, lines arrive as printed', async () => {
    const r = await timedRun('uring-dontneed');
    assert.equal(r.exitCode, 0, r.output);
    assert.equal(r.spawnedPid, r.pid);
    assert.equal(factNumber(r.facts, 'pid'), r.pid);
    const pin = factNumber(r.facts, 't_pin_ns');
    const hazard = factNumber(r.facts, 't_hazard_ns');
    assert.ok(hazard - pin >= 300 * MS, `hold before ${(hazard - pin) / MS} ms`);
    assert.ok(hazard - pin < 800 * MS, `hold before ${(hazard - pin) / MS} ms`);
    // The "diverged" line is printed right after the hazard: it must reach us then, not at exit.
    const seen = r.arrived.get('diverged')!;
    assert.ok(seen - hazard < 250 * MS, `hazard line arrived ${(seen - hazard) / MS} ms after the hazard`);
    const done = r.arrived.get('done')!;
    assert.ok(done - hazard >= 1500 * MS, `pin kept ${(done - hazard) / MS} ms after the hazard`);
    assert.ok(r.exitedAt - seen >= 1400 * MS, 'the hazard line arrived long before exit');
  });

  test('PINWATCH_HOLD_BEFORE_MS / PINWATCH_HOLD_AFTER_MS override the holds', async () => {
    const t0 = now();
    const r = await timedRun('uring-dontneed', { PINWATCH_HOLD_BEFORE_MS: '50', PINWATCH_HOLD_AFTER_MS: '100' });
    assert.equal(r.exitCode, 0, r.output);
    const gap = factNumber(r.facts, 't_hazard_ns') - factNumber(r.facts, 't_pin_ns');
    assert.ok(gap >= 50 * MS && gap < 280 * MS, `hold before ${gap / MS} ms`);
    const kept = r.arrived.get('done')! - factNumber(r.facts, 't_hazard_ns');
    assert.ok(kept >= 100 * MS && kept < 1000 * MS, `hold after ${kept / MS} ms`);
    assert.ok(r.exitedAt - t0 < 1500 * MS, 'the whole run is shorter than the default hold after');
  });

  test('a malformed hold value is refused with exit 2 and a message', async () => {
    const r = await runScenario('uring-clean', { env: { PINWATCH_HOLD_BEFORE_MS: 'soon' } });
    assert.equal(r.exitCode, 2, r.output);
    assert.match(r.output, /PINWATCH_HOLD_BEFORE_MS must be a number of milliseconds, got 'soon'/);
  });

  test('an abort stops the program while it holds the pin (SIGTERM, 143)', async () => {
    const ac = new AbortController();
    const r = await runScenario('uring-clean', {
      signal: ac.signal,
      onOutput: (c) => {
        if (c.includes('"step":"used"')) ac.abort();
      },
    });
    assert.equal(r.exitCode, 143, r.output);
    assert.doesNotMatch(r.output, /"step":"done"/);
    assert.throws(() => process.kill(r.pid, 0), { code: 'ESRCH' });
  });
});
