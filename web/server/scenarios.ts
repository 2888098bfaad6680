// The bundled reproducers as the scenario page lists them (scenarios/index.ts). They run in the collector
// process (collector/service/terminals.ts), started over the collector link, never here.
import { SEVERITIES, type Severity } from '../../schema/anomalies.ts';
import type { ScenarioEntry } from '../shared/wire.ts';

const SEVERITY_SET: ReadonlySet<string> = new Set(SEVERITIES);

/** What the dashboard uses of scenarios/index.ts. */
interface ScenarioModule {
  listScenarios(): unknown[] | Promise<unknown[]>;
}

let catalogModule: Promise<ScenarioModule> | null = null;
function loadCatalog(): Promise<ScenarioModule> {
  catalogModule ??= import('../../scenarios/index.ts') as unknown as Promise<ScenarioModule>;
  return catalogModule;
}

function str(v: unknown): string {
  return typeof v === 'string' ? v : '';
}

/** Normalises a catalog entry to what the page shows (the catalog's own shape may carry more). */
function toEntry(raw: unknown): ScenarioEntry | null {
  if (!raw || typeof raw !== 'object') return null;
  const o = raw as Record<string, unknown>;
  const name = str(o.name);
  if (!name) return null;
  const expect = Array.isArray(o.expect) ? o.expect : [];
  return {
    name,
    title: str(o.title) || str(o.summary) || name,
    description: str(o.description) || str(o.what) || str(o.summary),
    expected: o.silent
      ? []
      : expect
          .map((e) => e as Record<string, unknown>)
          .filter((e) => str(e?.rule))
          .map((e) => ({ rule: str(e.rule), severity: SEVERITY_SET.has(str(e.severity)) ? (str(e.severity) as Severity) : null })),
    seenOnKernel: str(o.seenOnKernel),
    seeds: Array.isArray(o.seeds) ? o.seeds.filter((x): x is string => typeof x === 'string') : [],
  };
}

export async function listScenarioEntries(): Promise<ScenarioEntry[]> {
  const mod = await loadCatalog();
  const list = await mod.listScenarios();
  return list.map(toEntry).filter((e): e is ScenarioEntry => e !== null);
}
