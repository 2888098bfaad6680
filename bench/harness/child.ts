// Runs one in-process benchmark in its own Node process (so its RSS, heap and JIT state are its own) and
// prints its result as one JSON line on stdout. The harness (bench/run.ts) spawns it:
//   node --import tsx bench/harness/child.ts <memory-stream|memory-pins|ingest|hypervisor> '<json options>'
import { hypervisor, type HypervisorOptions } from './hypervisor.ts';
import { runIngest, type IngestOptions } from './ingest.ts';
import { memoryPins, memoryStream, type MemoryPinsOptions, type MemoryStreamOptions } from './memory.ts';

const [what, json] = process.argv.slice(2);
const opts = JSON.parse(json ?? '{}');
let result: unknown;
if (what === 'memory-stream') result = await memoryStream(opts as MemoryStreamOptions);
else if (what === 'memory-pins') result = await memoryPins(opts as MemoryPinsOptions);
else if (what === 'hypervisor') result = await hypervisor(opts as HypervisorOptions);
else if (what === 'ingest') result = await runIngest(opts as IngestOptions);
else {
  console.error(`unknown benchmark ${what}`);
  process.exit(2);
}
process.stdout.write(JSON.stringify(result) + '\n');
process.exit(0);
