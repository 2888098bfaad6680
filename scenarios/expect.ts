// Judging a collector's anomalies against a scenario's expectations (catalog.ts semantics), so live
// end-to-end tests and the benchmark apply one rule: for the scenario's pid, exactly the expected
// anomalies (rule, page address from the named fact, severity, confirmed), each once; silent scenarios
// also judge the children they fork.
import type { Anomaly, RuleId, Severity } from '../schema/anomalies.ts';
import { PAGE_SIZE } from '../schema/kernel.ts';
import { factNumber, type Fact } from './build.ts';
import type { ScenarioSpec } from './spec.ts';

export interface ResolvedExpectation {
  rule: RuleId;
  /** Page-aligned address taken from the fact named by addrFact. */
  addr: number;
  severity: Severity;
  confirmed?: boolean;
}

type Judged = Pick<Anomaly, 'rule' | 'addr' | 'severity' | 'confirmed' | 'pid'>;

/** The spec's expectations with addresses resolved from a run's facts (throws if a fact is missing). */
export function expectedAnomalies(spec: ScenarioSpec, facts: readonly Fact[]): ResolvedExpectation[] {
  return spec.expect.map((e) => {
    const addr = factNumber(facts, e.addrFact);
    if (addr % PAGE_SIZE !== 0) throw new Error(`fact '${e.addrFact}' = 0x${addr.toString(16)} is not page-aligned`);
    return { rule: e.rule, addr, severity: e.severity, ...(e.confirmed === undefined ? {} : { confirmed: e.confirmed }) };
  });
}

function matches(a: Judged, e: ResolvedExpectation): boolean {
  return a.rule === e.rule && a.addr === e.addr && a.severity === e.severity && (e.confirmed === undefined || a.confirmed === e.confirmed);
}

function describe(a: Omit<Judged, 'pid'>): string {
  return `${a.rule} ${a.severity} at 0x${a.addr.toString(16)}${a.confirmed ? ' (confirmed)' : ''}`;
}

/**
 * Problems with the anomalies a collector raised during one run of `spec` ([] = as expected).
 * `anomalies` may hold other processes' anomalies: only `pid` is judged, plus `childPids` for silent scenarios.
 */
export function checkAnomalies(
  spec: ScenarioSpec,
  facts: readonly Fact[],
  pid: number,
  anomalies: readonly Judged[],
  childPids: readonly number[] = [],
): string[] {
  const problems: string[] = [];
  if (spec.silent) {
    for (const a of anomalies) {
      if (a.pid === pid || childPids.includes(a.pid)) problems.push(`must stay silent, got ${describe(a)} for pid ${a.pid}`);
    }
    return problems;
  }
  const expected = expectedAnomalies(spec, facts);
  const hits = new Array<number>(expected.length).fill(0);
  for (const a of anomalies) {
    if (a.pid !== pid) continue;
    const i = expected.findIndex((e) => matches(a, e));
    if (i < 0) problems.push(`unexpected ${describe(a)}`);
    else if (++hits[i] === 2) problems.push(`raised more than once: ${describe(a)}`);
  }
  expected.forEach((e, i) => {
    if (hits[i] === 0) problems.push(`missing ${describe({ ...e, confirmed: e.confirmed ?? false })}`);
  });
  return problems;
}
