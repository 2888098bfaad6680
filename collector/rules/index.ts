// Every rule pinwatch runs, in the order of schema/anomalies.ts RULE_IDS. `pinwatch rules` and the web's
// rule view read ALL_RULES[].info.
import type { RuleInfo } from '../../schema/anomalies.ts';
import { RULE_IDS, type RuleId } from '../../schema/anomalies.ts';
import { rule as collapseBlockedByPin } from './collapse-blocked-by-pin.ts';
import { rule as collapseUffdHole } from './collapse-uffd-hole.ts';
import { rule as cowOnPinnedPage } from './cow-on-pinned-page.ts';
import { rule as forkWithPins } from './fork-with-pins.ts';
import { rule as longtermPinFileBacked } from './longterm-pin-file-backed.ts';
import { rule as pinLeak } from './pin-leak.ts';
import { rule as pinPteDivergence } from './pin-pte-divergence.ts';
import { rule as pinnedRangeZapped } from './pinned-range-zapped.ts';
import type { Rule } from './rule.ts';
import { rule as secondaryMmuWp } from './secondary-mmu-wp.ts';
import { rule as unmapOfPinnedPage } from './unmap-of-pinned-page.ts';

const byId: Record<RuleId, Rule> = {
  'pin-pte-divergence': pinPteDivergence,
  'pinned-range-zapped': pinnedRangeZapped,
  'fork-with-pins': forkWithPins,
  'cow-on-pinned-page': cowOnPinnedPage,
  'unmap-of-pinned-page': unmapOfPinnedPage,
  'longterm-pin-file-backed': longtermPinFileBacked,
  'collapse-uffd-hole': collapseUffdHole,
  'collapse-blocked-by-pin': collapseBlockedByPin,
  'secondary-mmu-wp': secondaryMmuWp,
  'pin-leak': pinLeak,
};

export const ALL_RULES: readonly Rule[] = RULE_IDS.map((id) => byId[id]);

export const RULE_INFOS: readonly RuleInfo[] = ALL_RULES.map((r) => r.info);

export function ruleById(id: string): Rule | undefined {
  return (byId as Record<string, Rule>)[id];
}

export type { Rule, RuleContext, AnomalyDraft } from './rule.ts';
export { RuleEngine } from './engine.ts';
