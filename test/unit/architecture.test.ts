// The architecture rules, checked on every unit run and alone with `npm run check:arch`: imports only point down
// (schema ← scenarios ← collector ← web ← cli ← bin), no import circle (type-only imports count), production
// code never imports test/, every import resolves, and no production source file is over 500 lines. The import
// rules are dependency-cruiser's, written in .dependency-cruiser.cjs; the line limit is counted here.
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { cruise, type ICruiseResult, type IViolation } from 'dependency-cruiser';
import extractDepcruiseOptions from 'dependency-cruiser/config-utl/extract-depcruise-options';
import extractTSConfig from 'dependency-cruiser/config-utl/extract-ts-config';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
/** The production folders, bottom layer first. */
const PRODUCTION_DIRS = ['schema', 'scenarios', 'collector', 'web', 'cli', 'bin'];
const SOURCE_FILE = /\.(ts|tsx|js|mjs|cjs)$/;
const SKIPPED_DIRS = new Set(['node_modules', '.next']);
const MAX_LINES = 500;

/**
 * TEMPORARY (issue 14): the files over MAX_LINES that other branches of the same refactor are splitting, with
 * their line counts when this test landed. Empty it when those branches are merged. A listed file that grows
 * fails, and so does one that is gone or no longer over the limit, so the list can neither hide growth nor go
 * stale.
 */
const TEMPORARY_OVERSIZED_FILES: Readonly<Record<string, number>> = {};

/**
 * TEMPORARY (issue 14): the one import circle left, made of type-only imports, in code another branch of the
 * same refactor is reshaping. Empty it when that branch is merged; an entry that no longer exists fails.
 */
const TEMPORARY_CIRCLES: readonly string[] = [];

/** Lines as `wc -l` counts them for a file that ends in a newline (a last line without one counts too). */
function lineCount(text: string): number {
  if (text === '') return 0;
  return text.split('\n').length - (text.endsWith('\n') ? 1 : 0);
}

function sourceFiles(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(join(ROOT, dir), { withFileTypes: true })) {
    const path = `${dir}/${entry.name}`;
    if (entry.isDirectory()) {
      if (!SKIPPED_DIRS.has(entry.name)) out.push(...sourceFiles(path));
    } else if (SOURCE_FILE.test(entry.name)) out.push(path);
  }
  return out;
}

/** A circle as one string, started at its alphabetically first module so the same circle always reads the same. */
function circleText(v: IViolation): string {
  const modules = [v.from, ...(v.cycle ?? []).map((d) => d.name)];
  if (modules.at(-1) === modules[0]) modules.pop();
  const first = modules.indexOf([...modules].sort()[0]!);
  const rotated = [...modules.slice(first), ...modules.slice(0, first)];
  return [...rotated, rotated[0]].join(' → ');
}

function violationText(v: IViolation): string {
  return v.cycle ? `${v.rule.name}: ${circleText(v)}` : `${v.rule.name}: ${v.from} → ${v.to}`;
}

test('imports point down the layers, no import circle, nothing from test/, every import resolves', async () => {
  const options = await extractDepcruiseOptions(join(ROOT, '.dependency-cruiser.cjs'));
  const tsConfigFile = join(ROOT, 'tsconfig.json');
  const result = await cruise(
    PRODUCTION_DIRS,
    { ...options, baseDir: ROOT, tsConfig: { fileName: tsConfigFile } },
    undefined,
    { tsConfig: extractTSConfig(tsConfigFile) },
  );
  const cruised = result.output as ICruiseResult;

  // The rules must have seen the code: every production folder, and the layer edges they judge.
  const modules = cruised.modules.map((m) => m.source);
  for (const dir of PRODUCTION_DIRS) assert.ok(modules.some((m) => m.startsWith(`${dir}/`)), `no module cruised under ${dir}/`);
  const edge = (from: string, to: string) =>
    cruised.modules.some((m) => m.source.startsWith(from) && m.dependencies.some((d) => d.resolved.startsWith(to)));
  assert.ok(edge('cli/', 'web/') && edge('cli/', 'collector/') && edge('web/', 'collector/') && edge('collector/', 'schema/'), 'layer edges seen');

  const violations = cruised.summary.violations;
  const found = violations.map(violationText);
  const circles = violations.filter((v) => v.cycle).map(circleText);
  const unexpected = found.filter((text) => !TEMPORARY_CIRCLES.some((c) => text === `no-circular: ${c}`));
  assert.deepEqual(unexpected, [], `architecture violations (rules in .dependency-cruiser.cjs):\n  ${unexpected.join('\n  ')}`);
  const gone = TEMPORARY_CIRCLES.filter((c) => !circles.includes(c));
  assert.deepEqual(gone, [], 'circles no longer there: remove them from TEMPORARY_CIRCLES');
});

test(`no production source file is over ${MAX_LINES} lines`, () => {
  const files = PRODUCTION_DIRS.flatMap(sourceFiles);
  assert.ok(files.length > 100, `only ${files.length} production files found`);
  const lines = new Map(files.map((f) => [f, lineCount(readFileSync(join(ROOT, f), 'utf8'))]));
  const over = [...lines].filter(([, n]) => n > MAX_LINES).sort((a, b) => b[1] - a[1]);

  const offenders = over
    .filter(([file, n]) => !(file in TEMPORARY_OVERSIZED_FILES) || n > TEMPORARY_OVERSIZED_FILES[file]!)
    .map(([file, n]) => `${file}: ${n} lines${file in TEMPORARY_OVERSIZED_FILES ? ` (listed at ${TEMPORARY_OVERSIZED_FILES[file]})` : ''}`);
  assert.deepEqual(offenders, [], `production files over ${MAX_LINES} lines:\n  ${offenders.join('\n  ')}`);

  const stale = Object.keys(TEMPORARY_OVERSIZED_FILES)
    .filter((file) => !((lines.get(file) ?? 0) > MAX_LINES))
    .map((file) => `${file}: ${lines.has(file) ? `${lines.get(file)} lines` : 'gone'}`);
  assert.deepEqual(stale, [], `no longer over ${MAX_LINES} lines: remove them from TEMPORARY_OVERSIZED_FILES:\n  ${stale.join('\n  ')}`);
});

test('line counts as wc -l', () => {
  assert.equal(lineCount(''), 0);
  assert.equal(lineCount('a\n'), 1);
  assert.equal(lineCount('a\nb'), 2);
  assert.equal(lineCount('a\n\nb\n'), 3);
});
