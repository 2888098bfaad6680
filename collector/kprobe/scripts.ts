// The kprobe script set (bpf/kprobe/*.bt) as data: header parsing, per-kernel selection and the
// per-kernel text. A script's header declares
//   // probes: every attach point it contains (a script whose probes all exist runs as it is)
//   // optional: attach points that may be missing; their probes are pruned from the text
//   // any-of: attach points of which at least one must exist (page_* vs folio_* names)
//   // btf: fn(param, ...)   the parameter names the script's argument positions assume
// and its text carries `#define PW_VMEMMAP_BASE`/`PW_PAGE_STRUCT_SIZE` constants and lines tagged
// `// pw:KEY` that variants.ts replaces for the running kernel.
import { readFileSync, readdirSync } from 'node:fs';
import { basename, join } from 'node:path';
import { parseScript, pruneProbes as pruneMissing } from '../runner/program.ts';

export interface KprobeScriptHeader {
  /** 'kprobe/gup' */
  name: string;
  file: string;
  /** First header line: what it watches. */
  what: string;
  probes: string[];
  optional: string[];
  anyOf: string[][];
  /** fn -> expected parameter names */
  btf: { fn: string; params: string[] }[];
  examples: string[];
}

export function parseHeader(text: string, file: string): KprobeScriptHeader {
  const name = `kprobe/${basename(file).replace(/\.bt$/, '')}`;
  const h: KprobeScriptHeader = { name, file, what: '', probes: [], optional: [], anyOf: [], btf: [], examples: [] };
  for (const line of text.split('\n')) {
    if (!line.startsWith('//')) {
      if (line.trim() === '' || line.startsWith('#')) continue;
      break;
    }
    const body = line.slice(2).trim();
    // The header opens with `<file>.bt — what`; the doctor names the script as kprobe/<file>.
    if (!h.what) h.what = body.replace(/^[\w.-]+\.bt — /, `${name}: `);
    const m = /^(probes|optional|any-of|btf|Example):\s*(.*)$/.exec(body);
    if (!m) continue;
    const [, key, value] = m;
    if (key === 'probes') h.probes.push(...value.split(/\s+/).filter(Boolean));
    else if (key === 'optional') h.optional.push(...value.split(/\s+/).filter(Boolean));
    else if (key === 'any-of') h.anyOf.push(value.split(/\s+/).filter(Boolean));
    else if (key === 'Example') h.examples.push(value);
    else if (key === 'btf') {
      const b = /^([\w.]+)\((.*)\)$/.exec(value.trim());
      if (b) h.btf.push({ fn: b[1], params: b[2].split(',').map((s) => s.trim()).filter(Boolean) });
    }
  }
  return h;
}

export const KPROBE_DIR = new URL('../../bpf/kprobe/', import.meta.url).pathname;

export function loadKprobeScripts(dir = KPROBE_DIR): { header: KprobeScriptHeader; text: string }[] {
  return readdirSync(dir)
    .filter((f) => f.endsWith('.bt'))
    .sort()
    .map((f) => {
      const file = join(dir, f);
      const text = readFileSync(file, 'utf8');
      return { header: parseHeader(text, file), text };
    });
}

/** Function name of a kprobe/kretprobe attach point, null for other probe types. */
export function kprobeSymbol(probe: string): string | null {
  const m = /^(?:kprobe|kretprobe):(?:[\w-]+:)?([\w.]+)$/.exec(probe.trim());
  return m ? m[1] : null;
}

/**
 * Remove attach points that are not available and blocks left without any: the runner's pruning (one bpftrace
 * parser for the project), with the removed attach points listed for the doctor.
 */
export function pruneProbes(src: string, available: (probe: string) => boolean): { text: string; removed: string[] } {
  const removed: string[] = [];
  for (const b of parseScript(src).blocks) for (const a of b.attach) if (!available(a)) removed.push(a);
  return { text: removed.length ? pruneMissing(src, new Set(removed)) : src, removed };
}

/** Replace `#define NAME value` lines. */
export function setDefine(src: string, name: string, value: string): string {
  const re = new RegExp(`^#define ${name} .*$`, 'm');
  if (!re.test(src)) return src;
  return src.replace(re, `#define ${name} ${value}`);
}

/** Replace the line(s) tagged `// pw:KEY`, keeping their indentation. */
export function setVariantLine(src: string, key: string, line: string): string {
  return src.replace(new RegExp(`^([ \\t]*).*// pw:${key}$`, 'gm'), (_m, indent: string) => `${indent}${line} // pw:${key}`);
}
