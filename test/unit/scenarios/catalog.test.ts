// The scenario catalog is consistent with its C sources: names unique and CLI-safe, every source exists,
// says which scenario it is and compiles with -Werror, every fact an expectation names is printed by the
// program, the timing contract and shared scaffolding are the same everywhere. No root needed (cc is).
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { RULE_IDS, SEVERITIES } from '../../../schema/anomalies.ts';
import { SCENARIOS, SCENARIO_SOURCE_DIR, buildScenario, getScenario, linkLibs, listScenarios, sourcePath } from '../../../scenarios/index.ts';

const source = (name: string) => readFileSync(sourcePath(name), 'utf8');

/** Keys a C source prints in PINWATCH lines: in C they appear as \"key\": inside format strings. */
function printedKeys(src: string): Set<string> {
  const keys = new Set(['scenario', 'step', 'pid']); // printed by fact() itself
  for (const m of src.matchAll(/\\"([a-z0-9_]+)\\":/g)) keys.add(m[1]);
  return keys;
}

/** Text between a scaffolding marker and its end marker, or null. */
function block(src: string, begin: string, end: string): string | null {
  const i = src.indexOf(begin);
  if (i < 0) return null;
  const j = src.indexOf(end, i);
  assert.ok(j > i, `end marker '${end}' after '${begin}'`);
  return src.slice(i, j + end.length);
}
const BASE = ['/* ---- pinwatch scaffolding: base', '/* ---- end base ---- */'] as const;
const RING = ['/* ---- pinwatch scaffolding: io_uring', '/* ---- end io_uring ---- */'] as const;
const VFIO = ['/* ---- pinwatch scaffolding: vfio', '/* ---- end vfio ---- */'] as const;
const RDMA = ['/* ---- pinwatch scaffolding: rdma', '/* ---- end rdma ---- */'] as const;

describe('scenario catalog', () => {
  test('has the eleven scenarios of the brief, the O_DIRECT control, six VFIO and four RDMA device scenarios, names unique and CLI-safe', () => {
    const names = SCENARIOS.map((s) => s.name);
    assert.equal(new Set(names).size, names.length, 'duplicate names');
    for (const n of names) assert.match(n, /^[a-z][a-z0-9]*(-[a-z0-9]+)*$/, `CLI-safe name: ${n}`);
    assert.deepEqual(
      [...names].sort(),
      [
        'collapse-pinned-anon', 'odirect-read', 'rdma-clean', 'rdma-dereg-clean', 'rdma-dontneed', 'rdma-fork', 'shmem-uffd-collapse', 'uring-clean', 'uring-dontneed', 'uring-file-shared', 'uring-fork',
        'uring-fork-dontfork', 'uring-memfd', 'uring-mremap', 'uring-munmap', 'vfio-clean', 'vfio-dontneed', 'vfio-fork',
        'vfio-munmap', 'vfio-thp-munmap', 'vfio-unmap-clean', 'vmsplice-pageout',
      ],
    );
    assert.equal(listScenarios(), SCENARIOS);
    assert.equal(getScenario('uring-dontneed').name, 'uring-dontneed');
    assert.throws(() => getScenario('nope'), /unknown scenario 'nope'; known: uring-clean/);
  });

  test('every C file under scenarios/c belongs to a catalog entry', () => {
    const files = readdirSync(SCENARIO_SOURCE_DIR).filter((f) => f.endsWith('.c')).sort();
    assert.deepEqual(files, SCENARIOS.map((s) => s.source).sort());
  });

  for (const s of SCENARIOS) {
    describe(s.name, () => {
      test('source exists, is named after the scenario and declares it', () => {
        assert.equal(s.source, `${s.name}.c`);
        assert.ok(existsSync(sourcePath(s.name)), sourcePath(s.name));
        assert.match(source(s.name), new RegExp(`static const char \\*scenario = "${s.name}";`));
      });

      test('descriptive fields are filled in', () => {
        assert.ok(s.title.length > 10 && s.title.length < 90, 'title: one line');
        assert.ok(s.description.length > 200, 'description: a paragraph');
        assert.ok(s.seenOnKernel.length > 10);
        assert.ok(s.seeds.length > 0);
        for (const seed of s.seeds) assert.match(seed, /^00[0-4]$/, 'seed threads 000-004');
        for (const seed of s.seeds) assert.match(s.description, new RegExp(`seed ${seed}`, 'i'), `description names seed ${seed}`);
      });

      test('expectations are well-formed and name facts the program prints', () => {
        const keys = printedKeys(source(s.name));
        if (s.silent) assert.deepEqual(s.expect, [], 'silent scenarios expect nothing');
        for (const e of s.expect) {
          assert.ok((RULE_IDS as readonly string[]).includes(e.rule), `rule id ${e.rule}`);
          assert.ok((SEVERITIES as readonly string[]).includes(e.severity), `severity ${e.severity}`);
          assert.ok(keys.has(e.addrFact), `${s.source} prints fact '${e.addrFact}' (prints: ${[...keys].join(', ')})`);
        }
        const pairs = s.expect.map((e) => `${e.rule}@${e.addrFact}`);
        assert.equal(new Set(pairs).size, pairs.length, 'no expectation twice');
      });

      test('hazard scenarios print t_hazard_ns (the benchmark measures latency from it)', () => {
        if (s.silent) return;
        assert.ok(printedKeys(source(s.name)).has('t_hazard_ns'));
      });

      test('follows the exit-code and output conventions', () => {
        const src = source(s.name);
        assert.match(src, /setvbuf\(stdout, NULL, _IOLBF, 0\)/, 'line-buffered stdout');
        assert.match(src, /fact\("done"/, 'a done fact at the end');
        assert.doesNotMatch(src, /#include <liburing/, "raw syscalls, no liburing");
      });
    });
  }

  test('scaffolding is the same text in every file (base everywhere, io_uring where used)', () => {
    const bases = new Set<string>();
    const rings = new Set<string>();
    for (const s of SCENARIOS) {
      const src = source(s.name);
      const b = block(src, ...BASE);
      assert.ok(b, `${s.source} has the base scaffolding`);
      bases.add(b);
      const r = block(src, ...RING);
      if (src.includes('io_uring_register') || src.includes('register_buffer(')) assert.ok(r, `${s.source} has the io_uring scaffolding`);
      if (r) rings.add(r);
    }
    assert.equal(bases.size, 1, 'base scaffolding differs between files');
    assert.equal(rings.size, 1, 'io_uring scaffolding differs between files');
    const vfios = new Set(SCENARIOS.filter((s) => s.needs === 'vfio-edu').map((s) => block(source(s.name), ...VFIO)));
    assert.ok(!vfios.has(null), 'every vfio-edu scenario has the vfio scaffolding');
    assert.equal(vfios.size, 1, 'vfio scaffolding differs between files');
    const rdmas = new Set(SCENARIOS.filter((s) => s.needs === 'rdma-rxe').map((s) => block(source(s.name), ...RDMA)));
    assert.ok(!rdmas.has(null), 'every rdma-rxe scenario has the rdma scaffolding');
    assert.equal(rdmas.size, 1, 'rdma scaffolding differs between files');
    const base = [...bases][0];
    // The timing contract lives in the base block, hence in every program.
    assert.match(base, /hold\("PINWATCH_HOLD_BEFORE_MS", 300,/);
    assert.match(base, /hold\("PINWATCH_HOLD_AFTER_MS", 1500,/);
    assert.match(base, /CLOCK_MONOTONIC/);
  });

  test('link libraries come only from a pinwatch-ldlibs line and only as -l flags', () => {
    assert.deepEqual(linkLibs(source('rdma-dontneed')), ['-libverbs']);
    assert.deepEqual(linkLibs(source('uring-clean')), []);
    assert.deepEqual(linkLibs(' * pinwatch-ldlibs: -libverbs -o /tmp/x ;rm -lm\n'), ['-libverbs', '-lm']);
  });

  describe('every source compiles with cc -O2 -Wall -Werror', () => {
    const cacheDir = mkdtempSync(path.join(tmpdir(), 'pinwatch-scenario-cache-'));
    after(() => rmSync(cacheDir, { recursive: true, force: true }));
    for (const s of SCENARIOS) {
      test(s.name, async () => {
        const bin = await buildScenario(s.name, { cacheDir });
        assert.ok(bin.startsWith(cacheDir + path.sep));
        assert.equal(path.basename(bin), s.name);
        assert.ok(existsSync(bin));
      });
    }
  });
});
