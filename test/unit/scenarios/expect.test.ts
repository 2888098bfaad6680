// checkAnomalies: the one judgement of "did the collector report what this scenario must produce",
// exercised on synthetic anomalies against the real catalog entries.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { checkAnomalies, expectedAnomalies, getScenario, type Fact } from '../../../scenarios/index.ts';

const PID = 100;
const dontneed = getScenario('uring-dontneed');
const facts: Fact[] = [
  { scenario: 'uring-dontneed', step: 'pinned', pid: PID, buf: '0x7f0000000000' },
  { scenario: 'uring-dontneed', step: 'hazard', pid: PID, zap_addr: '0x7f0000001000', t_hazard_ns: 1 },
];
const ZAP = 0x7f0000001000;
const zapped = { rule: 'pinned-range-zapped', severity: 'high', addr: ZAP, confirmed: false, pid: PID } as const;
const diverged = { rule: 'pin-pte-divergence', severity: 'critical', addr: ZAP, confirmed: true, pid: PID } as const;

describe('checkAnomalies', () => {
  test('resolves expectation addresses from facts', () => {
    assert.deepEqual(expectedAnomalies(dontneed, facts), [
      { rule: 'pinned-range-zapped', addr: ZAP, severity: 'high' },
      { rule: 'pin-pte-divergence', addr: ZAP, severity: 'critical', confirmed: true },
    ]);
  });

  test('exactly the expected anomalies: no problems; other pids are ignored', () => {
    const other = { ...diverged, pid: 999, addr: 0x1000 };
    assert.deepEqual(checkAnomalies(dontneed, facts, PID, [zapped, diverged, other]), []);
  });

  test('missing, wrong address, wrong severity, unconfirmed, extra and duplicate are each reported', () => {
    assert.deepEqual(checkAnomalies(dontneed, facts, PID, [zapped]), ['missing pin-pte-divergence critical at 0x7f0000001000 (confirmed)']);
    assert.deepEqual(checkAnomalies(dontneed, facts, PID, [zapped, { ...diverged, addr: ZAP + 4096 }]), [
      'unexpected pin-pte-divergence critical at 0x7f0000002000 (confirmed)',
      'missing pin-pte-divergence critical at 0x7f0000001000 (confirmed)',
    ]);
    assert.equal(checkAnomalies(dontneed, facts, PID, [zapped, { ...diverged, severity: 'high' }]).length, 2);
    assert.equal(checkAnomalies(dontneed, facts, PID, [zapped, { ...diverged, confirmed: false }]).length, 2);
    assert.deepEqual(checkAnomalies(dontneed, facts, PID, [zapped, diverged, { ...zapped, rule: 'pin-leak', severity: 'warning' }]), [
      'unexpected pin-leak warning at 0x7f0000001000',
    ]);
    assert.deepEqual(checkAnomalies(dontneed, facts, PID, [zapped, diverged, zapped]), ['raised more than once: pinned-range-zapped high at 0x7f0000001000']);
  });

  test('an expectation without `confirmed` accepts both', () => {
    assert.deepEqual(checkAnomalies(dontneed, facts, PID, [{ ...zapped, confirmed: true }, diverged]), []);
  });

  test('silent scenarios: anything for the pid or a forked child is a problem', () => {
    const dontfork = getScenario('uring-fork-dontfork');
    assert.deepEqual(checkAnomalies(dontfork, [], PID, [{ ...zapped, pid: 5 }]), []);
    assert.equal(checkAnomalies(dontfork, [], PID, [{ ...zapped, rule: 'fork-with-pins', severity: 'warning' }]).length, 1);
    assert.equal(checkAnomalies(dontfork, [], PID, [{ ...zapped, pid: 101 }], [101]).length, 1);
  });

  test('a missing or unaligned address fact is an error, not a silent pass', () => {
    assert.throws(() => expectedAnomalies(dontneed, facts.slice(0, 1)), /fact 'zap_addr' is missing/);
    assert.throws(() => expectedAnomalies(dontneed, [{ zap_addr: '0x7f0000001008' }]), /not page-aligned/);
  });
});
