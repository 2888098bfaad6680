// Unit tests of kprobe-mode start-up: header parsing, probe pruning, per-kernel variants, symbol and
// BTF detection, FOLL numbering, vmemmap arithmetic. Pure: fixtures are built here, not read from the host.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseHeader, pruneProbes, setDefine, setVariantLine, kprobeSymbol } from '../../../collector/kprobe/scripts.ts';
import { parseScript } from '../../../collector/runner/program.ts';

const topLevelBlocks = (src: string) => parseScript(src).blocks;
import { parseKallsyms, symbolState } from '../../../collector/kprobe/kallsyms.ts';
import { decodeFoll, follNames, follNumbering, kernelVersion } from '../../../collector/kprobe/foll.ts';
import { baseFromSamples, parseSamples } from '../../../collector/kprobe/vmemmap.ts';
import { planKprobeScripts, type KprobeHost } from '../../../collector/kprobe/index.ts';
import { orderLine, btfSignatureMismatch } from '../../../collector/kprobe/variants.ts';
import type { Btf } from '../../../collector/kprobe/btf.ts';
import { FOLL_6_3, FOLL_PRE_6_3 } from '../../../schema/kernel.ts';

const SRC = `// what it does
// probes: kprobe:a kretprobe:a kprobe:b kprobe:c tracepoint:syscalls:sys_enter_kill
// optional: kprobe:b
// any-of: kprobe:c kprobe:d
// btf: a(x, y)
#define PW_VMEMMAP_BASE (uint64)0xffffea0000000000

kprobe:a, kprobe:b /pid == 1/ { @x[tid] = arg0; }   // a comment { with a brace
kretprobe:a { printf("}\\n"); delete(@x[tid]); }
kprobe:b
{
  $v = 1; // pw:order
}
kprobe:c, kprobe:d { @y = 1; }
`;

test('header: probes, optional, any-of, btf', () => {
  const h = parseHeader(SRC, '/x/bpf/kprobe/demo.bt');
  assert.equal(h.name, 'kprobe/demo');
  assert.equal(h.what, 'what it does');
  assert.deepEqual(h.probes, ['kprobe:a', 'kretprobe:a', 'kprobe:b', 'kprobe:c', 'tracepoint:syscalls:sys_enter_kill']);
  assert.deepEqual(h.optional, ['kprobe:b']);
  assert.deepEqual(h.anyOf, [['kprobe:c', 'kprobe:d']]);
  assert.deepEqual(h.btf, [{ fn: 'a', params: ['x', 'y'] }]);
});

test('top-level blocks survive braces in strings and comments', () => {
  const blocks = topLevelBlocks(SRC);
  assert.deepEqual(blocks.map((b) => b.attach), [['kprobe:a', 'kprobe:b'], ['kretprobe:a'], ['kprobe:b'], ['kprobe:c', 'kprobe:d']]);
});

test('pruning removes missing attach points and blocks left empty, keeps predicates', () => {
  const { text, removed } = pruneProbes(SRC, (p) => p !== 'kprobe:b' && p !== 'kprobe:d');
  assert.deepEqual(removed.sort(), ['kprobe:b', 'kprobe:b', 'kprobe:d']);
  assert.match(text, /^kprobe:a\n\/pid == 1\/ \{ @x\[tid\] = arg0; \}/m);
  assert.doesNotMatch(text, /^kprobe:b$/m);
  assert.match(text, /^kprobe:c\n\{ @y = 1; \}/m);
  assert.deepEqual(topLevelBlocks(text).map((b) => b.attach), [['kprobe:a'], ['kretprobe:a'], ['kprobe:c']]);
});

test('defines and pw: variant lines are replaced', () => {
  const t = setVariantLine(setDefine(SRC, 'PW_VMEMMAP_BASE', '(uint64)0xffa41f6200000000'), 'order', '$v = 2;');
  assert.match(t, /^#define PW_VMEMMAP_BASE \(uint64\)0xffa41f6200000000$/m);
  assert.match(t, /^ {2}\$v = 2; \/\/ pw:order$/m);
});

test('kprobeSymbol', () => {
  assert.equal(kprobeSymbol('kretprobe:do_wp_page'), 'do_wp_page');
  assert.equal(kprobeSymbol('kprobe:vfio_iommu_type1:vfio_pin_pages_remote'), 'vfio_pin_pages_remote');
  assert.equal(kprobeSymbol('tracepoint:syscalls:sys_enter_kill'), null);
});

const KALLSYMS = [
  'ffffffff815e2f50 t do_wp_page',
  'ffffffff815ffa50 T folio_add_new_anon_rmap',
  'ffffffff81600000 t wp_page_copy.isra.0',
  'ffffffff82000000 D vmemmap_base',
  'ffffffffc0a01000 t vfio_pin_pages_remote\t[vfio_iommu_type1]',
].join('\n') + '\n';

test('kallsyms: present, absent (inlined), renamed (.isra), module symbols, data ignored', () => {
  const k = parseKallsyms(KALLSYMS);
  assert.equal(symbolState(k, 'do_wp_page'), 'present');
  assert.equal(symbolState(k, 'wp_page_copy'), 'renamed');
  assert.equal(symbolState(k, 'page_add_new_anon_rmap'), 'absent');
  assert.equal(symbolState(k, 'vmemmap_base'), 'absent');
  assert.equal(symbolState(k, 'vfio_pin_pages_remote'), 'present');
  assert.equal(k.moduleOf.get('vfio_pin_pages_remote'), 'vfio_iommu_type1');
});

test('FOLL numbering: BTF enum wins, release otherwise', () => {
  assert.deepEqual(kernelVersion('6.12.117+deb12-amd64'), [6, 12]);
  assert.equal(follNumbering('5.10.0-46-amd64'), FOLL_PRE_6_3);
  assert.equal(follNumbering('6.1.0-56-amd64'), FOLL_PRE_6_3);
  assert.equal(follNumbering('6.3.0'), FOLL_6_3);
  const fakeBtf = { enumValue: (n: string) => (n === 'FOLL_LONGTERM' ? 0x100 : undefined) } as unknown as Btf;
  assert.equal(follNumbering('6.1.0-backport', fakeBtf), FOLL_6_3);
  // io_uring's FOLL_WRITE|FOLL_LONGTERM in each numbering
  assert.deepEqual(decodeFoll(0x10001, FOLL_PRE_6_3), { write: true, get: false, pin: false, longterm: true });
  assert.deepEqual(decodeFoll(0x101, FOLL_6_3), { write: true, get: false, pin: false, longterm: true });
  assert.equal(decodeFoll(0x10001, FOLL_6_3).longterm, false);
  assert.equal(follNames(0x101, FOLL_6_3), 'WRITE|LONGTERM');
});

test('vmemmap base from mm_lru_insertion samples; disagreement is an error', () => {
  const base = 0xffa41f6200000000n;
  const samples = parseSamples(`Attaching 1 probe...\npwcal ${base + 12535n * 64n} 12535\npwcal ${base + 22732n * 64n} 22732\n`);
  assert.equal(samples.length, 2);
  assert.equal(baseFromSamples(samples, 64), base);
  assert.throws(() => baseFromSamples([...samples, { ptr: base + 64n, pfn: 2n }], 64), /disagree/);
  assert.throws(() => baseFromSamples([], 64), /no mm_lru_insertion samples/);
});

function fakeBtf(opts: { funcs?: Record<string, string[]>; members?: Record<string, string[]>; sizes?: Record<string, number> }): Btf {
  return {
    funcParams: (f: string) => opts.funcs?.[f]?.map((name) => ({ name, type: '?' })) ?? null,
    hasMember: (s: string, m: string) => opts.members?.[s]?.includes(m) ?? false,
    structSize: (s: string) => opts.sizes?.[s] ?? null,
    enumValue: () => undefined,
  } as unknown as Btf;
}

test('order line per struct layout: 5.10 page, 6.1 _folio_order, 6.12 _flags_1', () => {
  assert.match(orderLine(fakeBtf({ members: { page: ['compound_order'] }, sizes: { page: 64 } })), /struct page \*\)\(\$h \+ PW_PAGE_STRUCT_SIZE\)\)->compound_order/);
  assert.match(orderLine(fakeBtf({ members: { page: ['compound_order'], folio: ['_folio_order', '_flags_1'] }, sizes: { folio: 128 } })), /_folio_order/);
  assert.match(orderLine(fakeBtf({ members: { folio: ['_flags_1'] }, sizes: { folio: 128 } })), /_flags_1 & 0xff/);
});

test('collapse_file signature picks exactly one of the two scripts', () => {
  const h61 = parseHeader('// x\n// btf: collapse_file(mm, addr, file, start, cc)\n', 'a.bt');
  const h510 = parseHeader('// x\n// btf: collapse_file(mm, file, start, hpage, node)\n', 'b.bt');
  const k510 = fakeBtf({ funcs: { collapse_file: ['mm', 'file', 'start', 'hpage', 'node'] } });
  assert.equal(btfSignatureMismatch(h510, k510), null);
  assert.match(btfSignatureMismatch(h61, k510)!, /collapse_file\(mm, file, start, hpage, node\) is not/);
});

function host(functions: string[], btf: Btf | null, attachable = true): KprobeHost {
  return {
    release: '6.1.0-56-amd64', kprobesAttachable: attachable, btf,
    kallsyms: parseKallsyms(functions.map((f, i) => `ffffffff8${String(i).padStart(7, '0')} t ${f}`).join('\n')),
    tracepointExists: () => true,
  };
}

test('plan over the real bpf/kprobe set for a 6.1-like kernel', () => {
  const fns = ['do_wp_page', 'page_add_new_anon_rmap', 'page_move_anon_rmap', 'try_to_unmap_one', 'page_mkclean_one', 'collapse_file',
    '__split_huge_pmd', '__mmu_notifier_invalidate_range_start', 'pin_user_pages', 'pin_user_pages_fast', 'pin_user_pages_remote',
    'get_user_pages_fast', 'unpin_user_page', 'unpin_user_pages', 'unpin_user_pages_dirty_lock'];
  const btf = fakeBtf({ funcs: { collapse_file: ['mm', 'addr', 'file', 'start', 'cc'] }, members: { folio: ['_folio_order'] }, sizes: { folio: 128 } });
  const plans = planKprobeScripts(host(fns, btf), { vmemmapBase: 0xffa41f6200000000n });
  const by = new Map(plans.map((p) => [p.header.name, p]));
  assert.equal(by.get('kprobe/collapse-file')!.usable, true);
  assert.equal(by.get('kprobe/collapse-file-pre-6.1')!.usable, false);
  const wp = by.get('kprobe/wp-page')!;
  assert.equal(wp.usable, true);
  assert.doesNotMatch(wp.text!, /^kprobe:folio_add_new_anon_rmap/m);
  assert.ok(!wp.attached.includes("kprobe:folio_add_new_anon_rmap"));
  assert.match(wp.text!, /^kprobe:page_add_new_anon_rmap\n\/@wpin\[tid\]\//m);
  assert.match(wp.text!, /^#define PW_VMEMMAP_BASE \(uint64\)0xffa41f6200000000$/m);
  const gup = by.get('kprobe/gup')!;
  assert.equal(gup.usable, true);
  assert.ok(!gup.attached.includes('kprobe:ib_umem_get'));
  assert.doesNotMatch(gup.text!, /^kprobe:ib_umem_get/m);
  assert.match(wp.text!, /_folio_order; \/\/ pw:order/);
  assert.match(wp.text!, /^kprobe:page_move_anon_rmap$/m);
  // a required probe missing makes the script unusable, with the reason
  const noUnmap = planKprobeScripts(host(fns.filter((f) => f !== 'try_to_unmap_one'), btf), { vmemmapBase: 1n });
  assert.match(noUnmap.find((p) => p.header.name === 'kprobe/unmap')!.reason!, /try_to_unmap_one \(absent or inlined\)/);
  // no kprobes at all
  assert.ok(planKprobeScripts(host(fns, btf, false), { vmemmapBase: 1n }).every((p) => !p.usable && /kprobes cannot attach/.test(p.reason!)));
});
