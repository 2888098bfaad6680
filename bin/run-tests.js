#!/usr/bin/env node
// The README's test command (`npm test`). Runs every test file in ONE `node --test` invocation so the run ends
// with one summary, one file at a time (live tests attach bpftrace; two at once would fight over 2 cores).
// Node 20's runner does not expand globs or pick up .ts files from directories, so this walks the folders itself.
//   npm test                 unit + live + e2e + bench smoke
//   npm test -- unit         only test/unit (no root needed)
//   npm test -- live e2e     chosen suites
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const SUITES = { unit: 'test/unit', live: 'test/live', e2e: 'test/e2e' };

function testFiles(dir) {
  let entries;
  try { entries = readdirSync(join(root, dir)); } catch { return []; }
  const out = [];
  for (const name of entries.sort()) {
    const path = join(dir, name);
    if (statSync(join(root, path)).isDirectory()) out.push(...testFiles(path));
    else if (name.endsWith('.test.ts')) out.push(path);
  }
  return out;
}

const asked = process.argv.slice(2);
const unknown = asked.filter((s) => !(s in SUITES));
if (unknown.length) {
  console.error(`run-tests: unknown suite ${unknown.join(', ')} (choose from: ${Object.keys(SUITES).join(', ')})`);
  process.exit(2);
}
const suites = asked.length ? asked : Object.keys(SUITES);
const files = suites.flatMap((s) => testFiles(SUITES[s]));
if (files.length === 0) {
  console.error('run-tests: no test files found');
  process.exit(1);
}
console.log(`run-tests: ${files.length} files from ${suites.join(', ')}${process.env.CI === 'true' ? ' (CI: live prerequisites are mandatory)' : ''}`);
const result = spawnSync(
  process.execPath,
  ['--import', 'tsx', '--test', '--test-concurrency=1', '--test-reporter=spec', ...files.map((f) => relative(root, join(root, f)))],
  { cwd: root, stdio: 'inherit', env: process.env },
);
process.exit(result.status ?? 1);
