// pinwatch scenarios: the public face of scenarios/ for the CLI (`pinwatch scenario --list`,
// `pinwatch scenario NAME`), the dashboard (runs scenarioCommand() in a pty), the live tests and the
// benchmark. Conventions of the C programs: scenarios/README.md.
import { SCENARIOS } from './catalog.ts';
import type { ScenarioSpec } from './spec.ts';

export { SCENARIOS, EXPECTATIONS_KERNEL, getScenario } from './catalog.ts';
export type { ScenarioSpec, ExpectedAnomaly } from './spec.ts';
export {
  buildScenario,
  buildSource,
  linkLibs,
  scenarioCommand,
  runScenario,
  parseFacts,
  factValue,
  factNumber,
  sourcePath,
  defaultCacheDir,
  SCENARIO_SOURCE_DIR,
  CFLAGS,
  FACT_PREFIX,
} from './build.ts';
export type { BuildOptions, RunOptions, RunResult, Fact } from './build.ts';
export { expectedAnomalies, checkAnomalies } from './expect.ts';
export { missingDevice, findVfioEdu } from './devices.ts';
export { DEVICE_EXPECTATIONS_KERNEL } from './catalog-devices.ts';
export type { ResolvedExpectation } from './expect.ts';

/** The catalog in display order (what `pinwatch scenario --list` prints). */
export function listScenarios(): readonly ScenarioSpec[] {
  return SCENARIOS;
}
