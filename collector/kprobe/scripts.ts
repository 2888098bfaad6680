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
    if (!h.what) h.what = body;
    const m = /^(probes|optional|any-of|btf|example):\s*(.*)$/.exec(body);
    if (!m) continue;
    const [, key, value] = m;
    if (key === 'probes') h.probes.push(...value.split(/\s+/).filter(Boolean));
    else if (key === 'optional') h.optional.push(...value.split(/\s+/).filter(Boolean));
    else if (key === 'any-of') h.anyOf.push(value.split(/\s+/).filter(Boolean));
    else if (key === 'example') h.examples.push(value);
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

interface Block {
  start: number;
  /** end of the attach list (the predicate or '{' follows) */
  listEnd: number;
  end: number;
  attach: string[];
}

/** Top-level probe blocks of a bpftrace program: attach list, optional /predicate/, { body }. */
export function topLevelBlocks(src: string): Block[] {
  const blocks: Block[] = [];
  let i = 0;
  const n = src.length;
  let itemStart = -1;
  let listEnd = -1;
  while (i < n) {
    const c = src[i];
    if (c === '/' && src[i + 1] === '/') { i = nl(src, i); continue; }
    if (c === '/' && src[i + 1] === '*') { const e = src.indexOf('*/', i + 2); i = e < 0 ? n : e + 2; continue; }
    if (c === '#' && (i === 0 || src[i - 1] === '\n') && itemStart < 0) { i = nl(src, i); continue; }
    if (/\s/.test(c)) { i++; continue; }
    if (itemStart < 0) itemStart = i;
    if (c === '/' && listEnd < 0) {
      // predicate: runs to the next '/' not inside parentheses
      listEnd = i;
      let depth = 0;
      i++;
      while (i < n && !(src[i] === '/' && depth === 0)) { if (src[i] === '(') depth++; else if (src[i] === ')') depth--; i++; }
      i++;
      continue;
    }
    if (c === '{') {
      if (listEnd < 0) listEnd = i;
      const end = matchBrace(src, i);
      const attach = src.slice(itemStart, listEnd).split(',').map((s) => s.trim()).filter(Boolean);
      blocks.push({ start: itemStart, listEnd, end, attach });
      i = end;
      itemStart = -1;
      listEnd = -1;
      continue;
    }
    i++;
  }
  return blocks;
}

function nl(src: string, i: number): number {
  const e = src.indexOf('\n', i);
  return e < 0 ? src.length : e + 1;
}

function matchBrace(src: string, open: number): number {
  let depth = 0;
  for (let i = open; i < src.length; i++) {
    const c = src[i];
    if (c === '"') { i++; while (i < src.length && src[i] !== '"') { if (src[i] === '\\') i++; i++; } continue; }
    if (c === '/' && src[i + 1] === '/') { i = nl(src, i) - 1; continue; }
    if (c === '{') depth++;
    else if (c === '}') { depth--; if (depth === 0) return i + 1; }
  }
  throw new Error('unbalanced braces in bpftrace program');
}

/** Remove attach points that are not available; drop blocks left without any. Returns the new text. */
export function pruneProbes(src: string, available: (probe: string) => boolean): { text: string; removed: string[] } {
  const removed: string[] = [];
  let out = '';
  let pos = 0;
  for (const b of topLevelBlocks(src)) {
    const keep = b.attach.filter((p) => available(p));
    for (const p of b.attach) if (!keep.includes(p)) removed.push(p);
    if (keep.length === b.attach.length) continue;
    out += src.slice(pos, b.start);
    if (keep.length > 0) out += keep.join(', ') + (src[b.listEnd] === '/' ? ' ' : '\n') + src.slice(b.listEnd, b.end);
    pos = b.end;
  }
  out += src.slice(pos);
  return { text: out, removed };
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
