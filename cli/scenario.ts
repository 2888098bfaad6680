// `pinwatch scenario --list` / `pinwatch scenario NAME`: list the reproducers, or build and run one with its
// output streamed; the exit code is the scenario's (0 ok, 1 unexpected kernel behaviour, 2 cannot run here).
import { EXIT_USAGE, UsageError } from './args.ts';
import type { CliIo } from './io.ts';

export async function scenarioCommand(name: string | undefined, list: boolean, io: CliIo): Promise<number> {
  const scenarios = await import('../scenarios/index.ts');
  const all = scenarios.listScenarios();
  if (list) {
    if (name) throw new UsageError('pinwatch scenario: give a NAME or --list, not both');
    const w = Math.max(...all.map((s) => s.name.length));
    for (const s of all) io.out(`${s.name.padEnd(w)}  ${s.title}`);
    return 0;
  }
  if (!name) throw new UsageError(`pinwatch scenario: name a scenario (${all.map((s) => s.name).join(', ')}) or pass --list`);
  if (!all.some((s) => s.name === name)) {
    throw new UsageError(`pinwatch scenario: unknown scenario ${JSON.stringify(name)} (choose from: ${all.map((s) => s.name).join(', ')})`);
  }
  const abort = new AbortController();
  const unsubscribe = io.onSignal(() => abort.abort());
  try {
    const result = await scenarios.runScenario(name, {
      onOutput: (chunk: string) => process.stdout.write(chunk),
      signal: abort.signal,
    });
    return result.exitCode;
  } catch (err) {
    if (abort.signal.aborted) return 130;
    throw err;
  } finally {
    unsubscribe();
  }
}

export { EXIT_USAGE };
