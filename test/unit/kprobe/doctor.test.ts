// `pinwatch doctor` and the kprobe set, on a fake host (capabilities, kallsyms and BTF built here): with
// kprobes, one line per kprobe script as record --mode kprobe would run it and one per probe under it;
// without, one line with the reason and what tracepoint mode covers.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Capabilities } from '../../../collector/capabilities/index.ts';
import { formatDoctor, runDoctor } from '../../../collector/doctor.ts';
import { parseKallsyms } from '../../../collector/kprobe/kallsyms.ts';
import type { KprobeHost } from '../../../collector/kprobe/index.ts';
import type { Btf } from '../../../collector/kprobe/btf.ts';
import { fakeCapabilities } from '../../support/capabilities.ts';

const caps = (kprobes: boolean, symbols: string[]): Capabilities =>
  fakeCapabilities({ kprobes, symbols, kernelRelease: '6.1.0-56-amd64', allScripts: true });

// A 6.1-like kernel: page_* rmap names, collapse_file with the 6.1 signature, no vfio/RDMA modules loaded.
const SYMBOLS = ['do_wp_page', 'page_add_new_anon_rmap', 'page_move_anon_rmap', 'try_to_unmap_one', 'page_mkclean_one', 'collapse_file',
  '__split_huge_pmd', '__mmu_notifier_invalidate_range_start', '__mmu_notifier_invalidate_range_end', 'copy_page_range',
  'pin_user_pages', 'pin_user_pages_fast', 'pin_user_pages_remote', 'get_user_pages_fast', 'unpin_user_page', 'unpin_user_pages',
  'unpin_user_pages_dirty_lock'];

function kprobeHost(symbols: string[]): KprobeHost {
  const funcs: Record<string, string[]> = { collapse_file: ['mm', 'addr', 'file', 'start', 'cc'], copy_page_range: ['dst_vma', 'src_vma'] };
  const btf = {
    funcParams: (f: string) => funcs[f]?.map((name) => ({ name, type: '?' })) ?? null,
    hasMember: (s: string, m: string) => s === 'folio' && m === '_folio_order',
    structSize: (s: string) => (s === 'folio' ? 128 : s === 'page' ? 64 : null),
    enumValue: () => undefined,
  } as unknown as Btf;
  return {
    release: '6.1.0-56-amd64', kprobesAttachable: true, btf, tracepointExists: () => true,
    kallsyms: parseKallsyms(symbols.map((f, i) => `ffffffff8${String(i).padStart(7, '0')} t ${f}`).join('\n')),
  };
}

test('doctor with kprobes: each kprobe script as record would run it, with one line per probe', async () => {
  const report = await runDoctor({ caps: caps(true, SYMBOLS), kprobeHost: kprobeHost(SYMBOLS) });
  assert.equal(report.ok, true);
  const text = formatDoctor(report);
  assert.match(text, /^  ✔ kprobe\/\* — kprobe mode on 6\.1\.0-56-amd64: kprobes attachable, BTF yes, FOLL numbering pre-6\.3$/m);
  assert.match(text, /^  ✔ kprobe\/copy-page-range — selected \(1 probe\): kprobe\/copy-page-range: fork copying one vma/m);
  assert.match(text, /^      ✔ kprobe:copy_page_range — ok$/m);
  assert.match(text, /^  ✔ kprobe\/mmu-notifier — selected \(2 probes\)/m);
  assert.match(text, /^      ✔ kprobe:__mmu_notifier_invalidate_range_end — ok$/m);
  // the signature picks one collapse_file script; the other is left out with the reason
  assert.match(text, /^  ✔ kprobe\/collapse-file — selected/m);
  assert.match(text, /^  ✕ kprobe\/collapse-file-pre-6\.1 — left out: signature differs: collapse_file\(mm, addr, file, start, cc\) is not/m);
  // optional probes this kernel lacks: neutral, not failures
  assert.match(text, /^      · kprobe:ib_umem_get — not here \(optional, pruned\)$/m);
  assert.match(text, /^      · kprobe:folio_add_new_anon_rmap — not here \(optional, pruned\)$/m);
  assert.match(text, /^✔ scripts — mode kprobe: \d+ selected, 1 left out/m);
  // the tracepoint set is listed as before; kprobe scripts appear once each (the plan, not the raw selection)
  assert.match(text, /^  ✔ tracepoint\/madvise — selected/m);
  assert.equal(text.match(/^  . kprobe\/gup —/gm)?.length, 1);
});

test('doctor with kprobes: a missing required symbol leaves its script out, the probe line says why', async () => {
  const symbols = SYMBOLS.filter((s) => s !== 'copy_page_range');
  const text = formatDoctor(await runDoctor({ caps: caps(true, symbols), kprobeHost: kprobeHost(symbols) }));
  assert.match(text, /^  ✕ kprobe\/copy-page-range — left out: missing kprobe:copy_page_range \(absent or inlined\)$/m);
  assert.match(text, /^      ✕ kprobe:copy_page_range — absent from kallsyms \(inlined or not in this kernel\)$/m);
});

test('doctor without kprobes: one line with the reason and what tracepoint mode covers', async () => {
  const report = await runDoctor({ caps: caps(false, []) });
  assert.equal(report.ok, true, 'kprobes are optional');
  const text = formatDoctor(report);
  const kprobeLines = text.split('\n').filter((l) => /^ +. kprobe[/:]/.test(l));
  assert.equal(kprobeLines.length, 1, kprobeLines.join('\n'));
  assert.match(kprobeLines[0], /^  ✕ kprobe\/\* \(\d+ scripts\) — left out: kprobes cannot attach on this kernel \(\/sys\/bus\/event_source\/devices\/kprobe\/type missing\); tracepoint mode covers .*cannot see do_wp_page copies/);
  assert.match(text, /^✔ scripts — mode tracepoint: \d+ selected, \d+ left out/m);
  // --mode tracepoint on a kprobe host: the same single line, with that reason
  const forced = formatDoctor(await runDoctor({ caps: caps(true, SYMBOLS), mode: 'tracepoint', kprobeHost: kprobeHost(SYMBOLS) }));
  assert.match(forced, /^  ✕ kprobe\/\* \(\d+ scripts\) — not used: --mode tracepoint/m);
});

describe('pin source coverage (schema/pin-sources.ts)', () => {
  test('tracepoint mode says which sources it cannot see and why; kprobe mode names the unloaded drivers', async () => {
    const { sourceCoverage } = await import('../../../schema/pin-sources.ts');
    const tp = sourceCoverage('tracepoint');
    assert.deepEqual(tp.filter((c) => !c.seen).map((c) => c.source), ['iommufd', 'rdma', 'o_direct']);
    assert.match(tp.find((c) => c.source === 'rdma')!.detail, /no tracepoint decodes/);
    assert.match(tp.find((c) => c.source === 'vfio')!.detail, /iova/);
    const kp = sourceCoverage('kprobe', new Set(['kprobe:vfio_pin_pages_remote', 'kprobe:bio_iov_iter_get_pages']));
    assert.equal(kp.find((c) => c.source === 'vfio')!.seen, true);
    const rdma = kp.find((c) => c.source === 'rdma')!;
    assert.equal(rdma.seen, false, 'ib_umem_get not attachable: RDMA stays invisible');
    assert.match(rdma.detail, /kprobe:ib_umem_get not attachable/);
    assert.equal(kp.find((c) => c.source === 'io_uring')!.seen, true, 'seen from the syscall even without the caller probe');
  });
});
