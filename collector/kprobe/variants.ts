// Per-kernel pieces of the kprobe scripts that BTF decides: the `// pw:KEY` lines and the choice
// between scripts of the same kernel function with different signatures (header `btf:` lines).
import type { Btf } from './btf.ts';
import type { KprobeScriptHeader } from './scripts.ts';

/** The order of the compound page whose head is $h (wp-page.bt), per struct layout. */
export function orderLine(btf: Btf | null): string {
  if (btf?.hasMember('folio', '_folio_order')) return '$order = (uint64)((struct folio *)$h)->_folio_order;'; // 6.1–6.5
  if (btf && !btf.structSize('folio') && btf.hasMember('page', 'compound_order')) {
    return '$order = (uint64)((struct page *)($h + PW_PAGE_STRUCT_SIZE))->compound_order;'; // before folios (5.x)
  }
  return '$order = (uint64)(((struct folio *)$h)->_flags_1 & 0xff);'; // 6.6+
}

export function variantLines(btf: Btf | null): Record<string, string> {
  return { order: orderLine(btf) };
}

/** Does BTF confirm the parameter names a script's argument positions assume? null when BTF is unavailable. */
export function btfSignatureMismatch(header: KprobeScriptHeader, btf: Btf | null): string | null {
  if (!btf) return null;
  for (const want of header.btf) {
    const params = btf.funcParams(want.fn);
    if (!params) return `${want.fn}: not described by BTF`;
    const got = params.map((p) => p.name);
    if (got.join(',') !== want.params.join(',')) return `${want.fn}(${got.join(', ')}) is not ${want.fn}(${want.params.join(', ')})`;
  }
  return null;
}
