// The tracepoint set's line readers, compiled once from schema/event-kinds.ts at start-up. Each kind gets
// the function one would write by hand — its fields read into locals by the cursor's typed readers, then one
// object of a fixed shape from the kind's constructor — generated as source text, so the hot path calls no per-field loop, makes
// no intermediate array and creates every kind's events with one hidden class.
import type { TraceEvent } from '../../schema/events.ts';
import { EVENT_KINDS, kindRow, type AnyField, type AnyKindRow } from '../../schema/event-kinds.ts';
import * as cursor from './cursor.ts';

/** Event fields a tracepoint line does not carry, and the local they are taken from. */
const FILLED_FROM: Record<string, string> = { childComm: 'comm' };

const NAME = /^[A-Za-z][A-Za-z0-9]*$/;

/**
 * Source text of the constructor of one kind's events. A constructor rather than an object literal: V8 gives a
 * literal exactly its own fields, so the `seq` the Collector adds to every event (pipeline.ts ingest) took a
 * separately allocated property store each time; a constructor's objects keep room for it (in-object slack
 * tracking sees it added). The prototype is Object.prototype: the events stay plain objects.
 */
function constructorSource(kind: string, props: string[]): string {
  const names = props.map((p) => p.slice(0, p.indexOf(':')));
  const sets = ['kind', 'tsNs', 'pid', 'tid', 'comm', ...names].map((n) => (n === 'kind' ? `this.kind = ${JSON.stringify(kind)};` : `this.${n} = ${n};`));
  return `function Event_${kind}(${['tsNs', 'pid', 'tid', 'comm', ...names].join(', ')}) {\n  ${sets.join('\n  ')}\n}\nEvent_${kind}.prototype = Object.prototype;\n`;
}

/** Source text of the reader of one kind: reads its fields, then emits the event when the line was fine. */
function readerSource(kind: string, row: AnyKindRow): { body: string; ctor: string } {
  const body: string[] = ['const tsNs = uNum(), pid = pidNum(), tid = pidNum();'];
  const props: string[] = [];
  let comm = 'rest()';
  row.fields.forEach((f: AnyField, i) => {
    const [name, type, opt] = f;
    if (!NAME.test(name)) throw new Error(`event-kinds: ${kind}.${name} is not a plain field name`);
    const v = `v${i}`;
    if (typeof type !== 'string') {
      body.push(`const ${v} = ${opt?.numbered ? 'numberedWord' : 'word'}(w${i});`);
      props.push(`${name}: w${i}[${v}]`);
    } else if (type === 'text') {
      if (i !== row.fields.length - 1) throw new Error(`event-kinds: ${kind}.${name}: a text field must come last (before comm)`);
      body.push(`const ${v} = stringThenComm();`);
      comm = 'tail()';
      props.push(`${name}: ${v}`);
    } else {
      const read = { uint: 'uNum', int: 'num', pid: 'pidNum', ptr: 'hex', bool: 'num', word: 'str' }[type];
      body.push(`const ${v} = ${read}();`);
      props.push(type === 'bool' ? `${name}: ${v} !== 0` : `${name}: ${v}`);
    }
    const bounds: string[] = [];
    if (opt?.min !== undefined) bounds.push(`${v} < ${opt.min}`);
    if (opt?.max !== undefined) bounds.push(`${v} > ${opt.max}`);
    if (bounds.length) body.push(`if (ok() && (${bounds.join(' || ')})) fail(${JSON.stringify(`${name} out of range`)});`);
  });
  body.push(`const comm = ${comm};`);
  for (const name of row.filled ?? []) {
    const from = FILLED_FROM[name];
    if (from === undefined) throw new Error(`event-kinds: the parser cannot fill ${kind}.${name}`);
    props.push(`${name}: ${from}`);
  }
  const check = row.check ? `const why = check(e);\n  if (why !== null) { fail(why); return; }\n  ` : '';
  body.push(`if (!ok()) return;`);
  const args = ['tsNs', 'pid', 'tid', 'comm', ...props.map((p) => p.slice(p.indexOf(':') + 2))];
  body.push(`const e = new Event_${kind}(${args.join(', ')});`);
  body.push(`${check}emit(e);`);
  return { body: body.join('\n  '), ctor: constructorSource(kind, props) };
}

export type Reader = () => void;

/**
 * One reader per tag the tracepoint set prints. `emit` receives each well-formed event; a malformed line
 * leaves the cursor MALFORMED with its reason, a line the fast path cannot read leaves it NEED_SLOW.
 */
export function compileReaders(emit: (e: TraceEvent) => void): Record<string, Reader> {
  const readers: Record<string, Reader> = Object.create(null);
  const c = cursor;
  const params = ['uNum', 'num', 'pidNum', 'hex', 'word', 'numberedWord', 'str', 'stringThenComm', 'rest', 'tail', 'ok', 'fail', 'words', 'check', 'emit'];
  for (const kind of EVENT_KINDS) {
    const row = kindRow(kind);
    if (row.set !== 'tracepoint') continue;
    const words = row.fields.map((f) => (typeof f[1] === 'string' ? null : f[1]));
    const wordLists = words.map((w, i) => (w ? `const w${i} = words[${i}];\n` : '')).join('');
    // The source comes from the static table (names checked above), never from input.
    const { body, ctor } = readerSource(kind, row);
    const make = new Function(...params, `${wordLists}${ctor}return function read_${kind}() {\n  ${body}\n};`) as (...a: unknown[]) => Reader;
    readers[kind] = make(c.uNum, c.num, c.pidNum, c.hex, c.word, c.numberedWord, c.str, c.stringThenComm, c.rest, c.tail, c.ok, c.fail, words, row.check, emit);
  }
  return readers;
}
