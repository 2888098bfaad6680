// Which kernel functions exist as attachable symbols: /proc/kallsyms (root shows addresses; names are
// enough here). A function absent from kallsyms was inlined or does not exist on this kernel; one only
// present as name.isra.N / name.constprop.N was specialised by the compiler, so its arguments are not
// the declared ones and a kprobe reading them would lie.
import { readFileSync } from 'node:fs';

export type SymbolState = 'present' | 'absent' | 'renamed';

export interface Kallsyms {
  /** Function names (text symbols), including module ones. */
  functions: Set<string>;
  /** base name -> specialised names (foo -> foo.isra.0) for functions only present that way */
  specialised: Map<string, string[]>;
  /** module of a module symbol */
  moduleOf: Map<string, string>;
}

/** Parse /proc/kallsyms text: "ffffffff815e2f50 t do_wp_page" or "... t vfio_pin_pages_remote\t[vfio_iommu_type1]". */
export function parseKallsyms(text: string): Kallsyms {
  const functions = new Set<string>();
  const specialised = new Map<string, string[]>();
  const moduleOf = new Map<string, string>();
  let i = 0;
  const n = text.length;
  while (i < n) {
    let eol = text.indexOf('\n', i);
    if (eol < 0) eol = n;
    // "addr type name[\t[module]]": work on the line only (an unbounded indexOf would be quadratic)
    const line = text.slice(i, eol);
    i = eol + 1;
    const s1 = line.indexOf(' ');
    if (s1 <= 0 || s1 + 3 >= line.length) continue;
    const type = line.charCodeAt(s1 + 1) | 0x20; // lower-case: t/T both text
    if (type !== 0x74 /* t */ && type !== 0x77 /* w */) continue;
    const tab = line.indexOf('\t', s1 + 3);
    const name = tab < 0 ? line.slice(s1 + 3) : line.slice(s1 + 3, tab);
    functions.add(name);
    if (tab >= 0) moduleOf.set(name, line.slice(tab + 1).replace(/^\[|\]$/g, ''));
    const dot = name.indexOf('.');
    if (dot > 0) {
      const base = name.slice(0, dot);
      const list = specialised.get(base);
      if (list) list.push(name);
      else specialised.set(base, [name]);
    }
  }
  return { functions, specialised, moduleOf };
}

export function readKallsyms(path = '/proc/kallsyms'): Kallsyms {
  return parseKallsyms(readFileSync(path, 'latin1'));
}

export function symbolState(k: Kallsyms, name: string): SymbolState {
  if (k.functions.has(name)) return 'present';
  return k.specialised.has(name) ? 'renamed' : 'absent';
}
