// Building and running scenario programs without root: the on-demand compile cache (rebuild only when the
// source changes), the errors a user sees when cc is missing or the source is broken, and the parsing of
// PINWATCH fact lines from a real child process's output.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { spawnSync } from 'node:child_process';
import { buildSource, defaultCacheDir, factNumber, factValue, parseFacts } from '../../../scenarios/index.ts';

const dir = mkdtempSync(path.join(tmpdir(), 'pinwatch-build-test-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const cacheDir = path.join(dir, 'cache');

function cFile(name: string, body: string): string {
  const file = path.join(dir, name);
  writeFileSync(file, body);
  return file;
}

const hello = (word: string) =>
  `#include <stdio.h>\n#include <unistd.h>\nint main(void) { printf("hi\\nPINWATCH {\\"pid\\":%d,\\"word\\":\\"${word}\\",\\"addr\\":\\"0x7f0000001000\\"}\\n", getpid()); return 0; }\n`;

describe('buildSource', () => {
  test('compiles into <cache>/<hash>/<name>, reuses the binary while the source is unchanged, rebuilds when it changes', async () => {
    const file = cFile('hello.c', hello('one'));
    const first = await buildSource(file, 'hello', { cacheDir });
    assert.equal(path.basename(first), 'hello');
    assert.equal(path.dirname(path.dirname(first)), cacheDir);
    assert.match(path.basename(path.dirname(first)), /^[0-9a-f]{16}$/);
    const mtime = statSync(first).mtimeMs;
    const again = await buildSource(file, 'hello', { cacheDir });
    assert.equal(again, first);
    assert.equal(statSync(again).mtimeMs, mtime, 'not recompiled');

    writeFileSync(file, hello('two'));
    const changed = await buildSource(file, 'hello', { cacheDir });
    assert.notEqual(changed, first, 'a changed source gets a new binary');
    const out = spawnSync(changed, { encoding: 'utf8' }).stdout;
    assert.equal(factValue(parseFacts(out), 'word'), 'two');
  });

  test('concurrent builds of one source share one compile', async () => {
    const file = cFile('twice.c', hello('twice'));
    const [a, b] = await Promise.all([buildSource(file, 'twice', { cacheDir }), buildSource(file, 'twice', { cacheDir })]);
    assert.equal(a, b);
  });

  test('a missing compiler is a clear error', async () => {
    const file = cFile('nocc.c', hello('x'));
    await assert.rejects(buildSource(file, 'nocc', { cacheDir, cc: '/nonexistent/cc' }), /C compiler '\/nonexistent\/cc' not found.*install gcc/);
  });

  test('-Werror applies: a warning fails the build with the compiler message', async () => {
    const file = cFile('warn.c', 'int main(void) { int unused; return 0; }\n');
    await assert.rejects(buildSource(file, 'warn', { cacheDir }), /-Werror.*unused/s);
  });

  test('default cache dir honours PINWATCH_SCENARIO_CACHE, then XDG_CACHE_HOME', () => {
    assert.equal(defaultCacheDir({ PINWATCH_SCENARIO_CACHE: '/x/y' }), '/x/y');
    assert.equal(defaultCacheDir({ XDG_CACHE_HOME: '/c' }), '/c/pinwatch/scenarios');
    assert.match(defaultCacheDir({}), /\.cache\/pinwatch\/scenarios$/);
  });
});

describe('fact lines', () => {
  const output = [
    'uring-x: pid 7',
    'PINWATCH {"scenario":"uring-x","step":"pinned","pid":7,"buf":"0x7f0000000000","pfns":[1,2]}',
    'PINWATCH {"scenario":"uring-x","step":"hazard","pid":7,"zap_addr":"0x7f0000001000","t_hazard_ns":123}',
    'PINWATCH {"scenario":"uring-x","step":"child","pid":8,"pfn_after":5}',
    'PINWATCH {"scenario":"uring-x","step":"after","pid":7,"pfn_after":9}',
    'PINWATCH {"cut by a crash',
    'not PINWATCH {"a":1}',
    '',
  ].join('\n');

  test('parseFacts keeps well-formed fact lines in order and skips the rest', () => {
    const facts = parseFacts(output);
    assert.equal(facts.length, 4);
    assert.deepEqual(facts.map((f) => f.step), ['pinned', 'hazard', 'child', 'after']);
  });

  test('factValue / factNumber: first line with the key, optionally of one step; hex addresses parsed', () => {
    const facts = parseFacts(output);
    assert.equal(factNumber(facts, 'zap_addr'), 0x7f0000001000);
    assert.equal(factNumber(facts, 't_hazard_ns'), 123);
    assert.equal(factNumber(facts, 'pfn_after'), 5);
    assert.equal(factNumber(facts, 'pfn_after', 'after'), 9);
    assert.deepEqual(factValue(facts, 'pfns'), [1, 2]);
    assert.throws(() => factNumber(facts, 'nope'), /fact 'nope' is missing/);
    assert.throws(() => factNumber(facts, 'scenario'), /is "uring-x", not a number/);
  });
});
