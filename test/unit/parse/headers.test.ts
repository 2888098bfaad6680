// Every bpf script's header against the event-kind table (schema/event-kinds.ts): each kind a script prints
// is a row of the table with the same fields in the same order as its `// Line:`, its `// Example:` lines
// parse, and bpf/tracepoint/README.md's line-format table says the same. One header format in both folders.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import type { ParseSink } from '../../../collector/contracts.ts';
import { parseLine } from '../../../collector/parse/index.ts';
import { resetKprobeParserState } from '../../../collector/parse/kprobe.ts';
import { EVENT_KINDS, kindRow, PART_LINES, type ScriptSet } from '../../../schema/event-kinds.ts';
import type { TraceEvent } from '../../../schema/events.ts';

const BPF = new URL('../../../bpf/', import.meta.url).pathname;
const README = join(BPF, 'tracepoint/README.md');

interface Script {
  /** 'madvise' (tracepoint set) or 'kprobe/gup' */
  name: string;
  folder: 'tracepoint' | 'kprobe';
  file: string;
  header: string[];
  lines: { tag: string; names: string[] }[];
  examples: string[];
}

/** Field names of a documented line: words, with `(…)` annotations (word values, notes) dropped. */
function names(text: string): string[] {
  return text.replace(/\\\|/g, '|').replace(/\([^)]*\)/g, ' ').split(/\s+/).filter(Boolean);
}

function scripts(): Script[] {
  const out: Script[] = [];
  for (const folder of ['tracepoint', 'kprobe'] as const) {
    for (const f of readdirSync(join(BPF, folder)).filter((x) => x.endsWith('.bt')).sort()) {
      const text = readFileSync(join(BPF, folder, f), 'utf8').split('\n');
      const header: string[] = [];
      for (const l of text) {
        if (!l.startsWith('//')) break;
        header.push(l);
      }
      const lines = header
        .filter((l) => l.startsWith('// Line: '))
        .map((l) => {
          const [tag, ...rest] = names(l.slice('// Line: '.length));
          return { tag, names: rest };
        });
      const examples = header.filter((l) => l.startsWith('// Example: ')).map((l) => l.slice('// Example: '.length));
      const base = f.replace(/\.bt$/, '');
      out.push({ name: folder === 'kprobe' ? `kprobe/${base}` : base, folder, file: f, header, lines, examples });
    }
  }
  return out;
}

/** What a printf tag is: an event kind's line (in its script set), or a part line (gup_pfn). */
function tagFields(tag: string): { set: ScriptSet; fields: string[] } | null {
  const part = PART_LINES[tag];
  if (part) return { set: kindRow(part.of).set, fields: [...part.fields] };
  for (const kind of EVENT_KINDS) {
    const row = kindRow(kind);
    const fields = row.fields.map(([name, , opt]) => opt?.printed ?? name);
    if (kind === tag && row.set !== 'none') return { set: row.set, fields };
    if (row.kprobeTag === tag) return { set: 'kprobe', fields };
  }
  return null;
}

test('every script has a header in the one format: what, traces, why, a line and an example per kind', () => {
  const all = scripts();
  assert.ok(all.length >= 30);
  for (const s of all) {
    const where = `${s.folder}/${s.file}`;
    assert.match(s.header[0] ?? '', new RegExp(`^// ${s.file.replace(/\./g, '\\.')} — \\S`), `${where}: first line names the script and says what it traces`);
    assert.ok(s.header.some((l) => l.startsWith('// Traces: ')), `${where}: Traces:`);
    assert.ok(s.header.some((l) => l.startsWith('// Why: ')), `${where}: Why:`);
    assert.ok(s.lines.length >= 1, `${where}: at least one Line:`);
    const tags = s.lines.map((l) => l.tag);
    assert.deepEqual([...new Set(s.examples.map((e) => e.split('\t')[0]))].sort(), [...new Set(tags)].sort(), `${where}: one Example: per kind it prints`);
    assert.ok(!s.header.some((l) => /shared\/|mm-primer|seeds?\b/.test(l)), `${where}: names nothing outside the repo`);
  }
});

test('each Line: is a row of the event-kind table with the same fields in the same order', () => {
  for (const s of scripts()) {
    for (const { tag, names: n } of s.lines) {
      const where = `${s.folder}/${s.file} ${tag}`;
      const t = tagFields(tag);
      assert.ok(t, `${where}: no row in schema/event-kinds.ts`);
      assert.equal(t.set, s.folder, `${where}: printed by the ${s.folder} set, the table says ${t.set}`);
      assert.deepEqual(n.slice(0, 3), ['tsNs', 'pid', 'tid'], `${where}: tsNs pid tid first`);
      assert.equal(n[n.length - 1], 'comm', `${where}: comm last`);
      assert.deepEqual(n.slice(3, -1), t.fields, `${where}: fields`);
    }
  }
});

test('every Example: has the documented number of fields and parses', () => {
  const events: TraceEvent[] = [];
  const malformed: string[] = [];
  const sink: ParseSink = { event: (e) => events.push(e), lost: () => {}, ready: () => {}, malformed: (l, why) => malformed.push(`${why}: ${l}`) };
  resetKprobeParserState();
  let expected = 0;
  for (const s of scripts()) {
    for (const ex of s.examples) {
      const tag = ex.split('\t')[0];
      const line = s.lines.find((l) => l.tag === tag)!;
      assert.equal(ex.split('\t').length, line.names.length + 1, `${s.file}: ${ex}`);
      parseLine(JSON.stringify({ type: 'printf', data: ex }), sink);
      if (!PART_LINES[tag]) expected++;
    }
  }
  assert.deepEqual(malformed, []);
  assert.equal(events.length, expected);
  // Each parsed example reads as a sentence: every field its row's sentence names is there.
  for (const e of events) {
    const said = (kindRow(e.kind).describe as (e: TraceEvent) => string)(e);
    assert.ok(said.length > 0 && !/undefined|NaN/.test(said), `${e.kind}: ${said}`);
  }
});

test('every kind the table says a script set prints is printed by a script of that set', () => {
  const printed = new Map<string, string>();
  for (const s of scripts()) for (const l of s.lines) printed.set(l.tag, s.folder);
  for (const kind of EVENT_KINDS) {
    const row = kindRow(kind);
    if (row.set !== 'none') assert.equal(printed.get(kind), row.set, `${kind}: no ${row.set} script prints it`);
    if (row.kprobeTag) assert.equal(printed.get(row.kprobeTag), 'kprobe', `${row.kprobeTag}: no kprobe script prints it`);
  }
});

test("the README's line-format table matches the table and the scripts", () => {
  const rows = readFileSync(README, 'utf8')
    .split('\n')
    .filter((l) => /^\| [a-z_]+ \|/.test(l))
    .map((l) => l.split(/(?<!\\)\|/).slice(1, -1).map((c) => c.trim()));
  const byTag = new Map<string, Set<string>>();
  for (const s of scripts()) for (const l of s.lines) byTag.set(l.tag, (byTag.get(l.tag) ?? new Set()).add(s.name));
  const documented = new Set<string>();
  for (const [tag, fields, scriptCol] of rows) {
    if (tag === 'kind' || tag === 'ready') continue; // the heading; the runner's sentinel, not a script's line
    documented.add(tag);
    const t = tagFields(tag);
    assert.ok(t, `README ${tag}: no row in schema/event-kinds.ts`);
    assert.deepEqual(names(fields), t.fields, `README ${tag}: fields`);
    const listed = names(scriptCol.replace(/,/g, ' '));
    assert.deepEqual(listed.sort(), [...(byTag.get(tag) ?? [])].sort(), `README ${tag}: the scripts that print it`);
  }
  assert.deepEqual([...documented].sort(), [...byTag.keys()].sort(), 'README lists every line a script prints');
});
