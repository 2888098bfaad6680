// The runner's public face: BpftraceRunner (the main program), FaultWatcher (page faults in armed pinned regions)
// and the program composition they share.
export * from './bpftrace-runner.ts';
export * from './fault-watcher.ts';
export { composeProgram, composeDetailed, parseScript, pruneProbes, scriptProbes, tracepointFields } from './program.ts';
export type { ScriptInput, ComposedProgram, ComposeOptions } from './program.ts';
export type { ScriptSpec } from '../contracts.ts';
