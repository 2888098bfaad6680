// The read cursor over one printf record's data: module-level state (no per-line allocation) and one
// reader per field type. Fast: the raw JSON line, fields separated by the 2-char escape `\t`; slow: the
// decoded data string, fields separated by a real tab. A reader that meets anything it cannot read in place
// sets NEED_SLOW; one that meets a bad value sets MALFORMED with the reason. Readers return 0 / '' once the
// state is not OK, so a line's reader runs straight through and checks `ok()` once at the end.
import { PID_MAX_LIMIT } from './ranges.ts';

let S = ''; // text being read: the raw line (fast) or the decoded data (slow)
let pos = 0; // start of the next field
let lim = 0; // end of the data
let fast = true; // fast: separator is the 2-char escape `\t`; slow: a real tab
let sepLen = 2;
let state = 0; // 0 ok, 1 malformed, 2 needs the slow path
let reason = '';

export const OK = 0;
export const MALFORMED = 1;
export const NEED_SLOW = 2;

export function fail(why: string): void {
  if (state === OK) {
    state = MALFORMED;
    reason = why;
  }
}

/** Index of the separator ending the current field, or -1 (no more separators / needs slow path). */
export function nextSep(): number {
  if (fast) {
    const k = S.indexOf('\\', pos);
    if (k < 0 || k >= lim) return -1;
    if (S.charCodeAt(k + 1) !== 116 /* t */) {
      state = NEED_SLOW;
      return -1;
    }
    return k;
  }
  const k = S.indexOf('\t', pos);
  return k < 0 || k >= lim ? -1 : k;
}

let fieldNo = 0;

/** A decimal integer field (optional leading '-'). Values past 2^53 lose their low bits (documented per kind). */
export function num(): number {
  if (state !== OK) return 0;
  fieldNo++;
  const k = nextSep();
  if (k < 0) {
    fail(`missing field ${fieldNo}`);
    return 0;
  }
  return digits(k);
}

/** A decimal integer that is the last field of the data. */
export function lastNum(): number {
  if (state !== OK) return 0;
  fieldNo++;
  if (nextSep() >= 0) {
    fail(`extra fields after field ${fieldNo}`);
    return 0;
  }
  if (state !== OK) return 0;
  return digits(lim);
}

function digits(k: number): number {
  let i = pos;
  let neg = false;
  if (S.charCodeAt(i) === 45 /* - */) {
    neg = true;
    i++;
  }
  if (i === k) {
    fail(`empty numeric field ${fieldNo}`);
    return 0;
  }
  if (k - i > 20) {
    fail(`number too long: field ${fieldNo}`);
    return 0;
  }
  let v = 0;
  for (; i < k; i++) {
    const d = S.charCodeAt(i) - 48;
    if (d < 0 || d > 9) {
      fail(`non-numeric field ${fieldNo}`);
      return 0;
    }
    v = v * 10 + d;
  }
  if (v > U64_MAX || (k - pos - (neg ? 1 : 0) === 20 && S.substring(k - 20, k) > U64_MAX_TEXT)) {
    fail(`number out of 64-bit range: field ${fieldNo}`);
    return 0;
  }
  pos = k + sepLen;
  return neg ? -v : v;
}

/**
 * A field that becomes an INTEGER column or a user extent (timestamp, address, length): a non-negative integer
 * exact in a JS number (< 2^53), so SQLite stores an INTEGER, never a REAL.
 */
export function uNum(): number {
  const v = num();
  if (state === OK && (v < 0 || v > MAX_EXACT)) fail(`field ${fieldNo} out of range`);
  return v;
}

/** A pid or tid: 0 ..= PID_MAX_LIMIT. */
export function pidNum(): number {
  const v = num();
  if (state === OK && (v < 0 || v > PID_MAX_LIMIT)) fail(`pid field ${fieldNo} out of range`);
  return v;
}

/** A 0x-hex kernel pointer field, kept as its text. */
export function hex(): string {
  if (state !== OK) return '';
  fieldNo++;
  const k = nextSep();
  if (k < 0) {
    fail(`missing field ${fieldNo}`);
    return '';
  }
  if (k - pos < 3 || S.charCodeAt(pos) !== 48 || S.charCodeAt(pos + 1) !== 120) {
    fail(`not a 0x pointer: field ${fieldNo}`);
    return '';
  }
  for (let i = pos + 2; i < k; i++) {
    const c = S.charCodeAt(i);
    if (!((c >= 48 && c <= 57) || (c >= 97 && c <= 102) || (c >= 65 && c <= 70))) {
      fail(`not a 0x pointer: field ${fieldNo}`);
      return '';
    }
  }
  const s = commAt(pos, k); // pointers repeat; a flat copy does not pin the line
  pos = k + sepLen;
  return s;
}

/** A word field that must be one of `words`; returns its index (no allocation). */
export function word(words: readonly string[]): number {
  if (state !== OK) return -1;
  fieldNo++;
  const k = nextSep();
  if (k < 0) {
    fail(`missing field ${fieldNo}`);
    return -1;
  }
  const n = k - pos;
  for (let w = 0; w < words.length; w++) {
    if (words[w].length === n && S.startsWith(words[w], pos)) {
      pos = k + sepLen;
      return w;
    }
  }
  fail(`unexpected value in field ${fieldNo}`);
  return -1;
}

// comm strings repeat: a small direct-mapped cache keyed by (length, first and last char) returns the same
// flat string without allocating; a slice would also pin the whole line in memory.
const COMM_SLOTS = 1024;
const commSlots: string[] = new Array<string>(COMM_SLOTS).fill('\u0000');
function commAt(from: number, to: number): string {
  const n = to - from;
  if (n === 0) return '';
  const h = (n * 31 + S.charCodeAt(from) * 7 + S.charCodeAt(to - 1) * 131 + S.charCodeAt(from + (n >> 1))) & (COMM_SLOTS - 1);
  const c = commSlots[h];
  if (c.length === n && S.startsWith(c, from)) return c;
  const s = S.slice(from, to);
  // Force a flat copy detached from the line (V8 keeps slices of >= 13 chars as views on the parent).
  const flat = n >= 13 ? (' ' + s).slice(1) : s;
  commSlots[h] = flat;
  return flat;
}

/** The last field (comm): everything to the end of the data, tabs included. */
export function rest(): string {
  if (state !== OK) return '';
  if (fast) {
    const b = S.indexOf('\\', pos);
    if (b >= 0 && b < lim) {
      state = NEED_SLOW;
      return '';
    }
  }
  return commAt(pos, lim);
}

/** Two trailing string fields (filename, comm): comm after the last separator, the rest is filename. */
let tailComm = '';
export function stringThenComm(): string {
  tailComm = '';
  if (state !== OK) return '';
  fieldNo++;
  if (fast) {
    const k = nextSep();
    if (k < 0) {
      if (state === OK) fail(`missing field ${fieldNo}`);
      return '';
    }
    const b = S.indexOf('\\', k + 2);
    if (b >= 0 && b < lim) {
      state = NEED_SLOW;
      return '';
    }
    const s = commAt(pos, k);
    pos = k + 2;
    tailComm = commAt(pos, lim);
    return s;
  }
  const k = S.lastIndexOf('\t', lim - 1);
  if (k < pos) {
    fail(`missing field ${fieldNo}`);
    return '';
  }
  const s = commAt(pos, k);
  pos = k + 1;
  tailComm = commAt(pos, lim);
  return s;
}

/** 2^64 - 1 as a double (2^64): bpftrace prints nothing larger. */
const U64_MAX = 18446744073709551615;
const U64_MAX_TEXT = '18446744073709551615';
const MAX_EXACT = Number.MAX_SAFE_INTEGER;

export function startFast(line: string, start: number, end: number): void {
  S = line;
  pos = start;
  lim = end;
  fast = true;
  sepLen = 2;
  state = OK;
  fieldNo = 0;
}

export function startSlow(data: string): void {
  S = data;
  pos = 0;
  lim = data.length;
  // printf("...\n") in a script: the newline is not part of the last field.
  if (lim > 0 && data.charCodeAt(lim - 1) === 10) lim--;
  fast = false;
  sepLen = 1;
  state = OK;
  fieldNo = 0;
}

/** The cursor's state: OK, MALFORMED or NEED_SLOW. */
export function status(): number {
  return state;
}

export function ok(): boolean {
  return state === OK;
}

/** Why the line is malformed (when status() is MALFORMED). */
export function failure(): string {
  return reason;
}

/** The comm read by stringThenComm. */
export function tail(): string {
  return tailComm;
}

/** Whether the fast path is reading (the separator is the 2-char escape). */
export function isFast(): boolean {
  return fast;
}

/** The text being read and the current field's bounds (dispatch reads the kind; unknown kinds take the rest). */
export function text(): string {
  return S;
}
export function at(): number {
  return pos;
}
export function end(): number {
  return lim;
}
/** Move past a separator found by nextSep at k. */
export function skipTo(k: number): void {
  pos = k + sepLen;
}

/** A word field the script may print as the word's index; returns the index. */
export function numberedWord(words: readonly string[]): number {
  if (state !== OK) return -1;
  const c = S.charCodeAt(pos);
  if (c < 48 || c > 57) return word(words);
  const i = num();
  if (state === OK && i >= words.length) fail(`unexpected value in field ${fieldNo}`);
  return state === OK ? i : -1;
}

/** A string field without tabs in the middle of the line (a function name). */
export function str(): string {
  if (state !== OK) return '';
  fieldNo++;
  const k = nextSep();
  if (k < 0) {
    if (state === OK) fail(`missing field ${fieldNo}`);
    return '';
  }
  const s = commAt(pos, k);
  pos = k + sepLen;
  return s;
}
