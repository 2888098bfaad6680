#!/usr/bin/env node
// The `pinwatch` command: registers tsx (TypeScript, no build step) and runs cli/main.ts.
// `npx pinwatch …` from the repository after `npm ci`.
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../cli/main.ts');
const code = await main(process.argv.slice(2));
process.exitCode = code;
// Leave even if a library left a handle open; rows are flushed by then (and the store's exit hook flushes too).
setTimeout(() => process.exit(code), 3000).unref();
