// Unit tests of collector/capabilities: format parsing, script needs read from the text, selection with the
// reasons scripts are left out, and the doctor's lines — on synthetic capabilities (no host access).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  describeScript,
  listScripts,
  parseFormatFields,
  selectScripts,
  type Capabilities,
} from '../../../collector/capabilities/index.ts';
import { formatDoctor, runDoctor } from '../../../collector/doctor.ts';
import { fakeCapabilities } from '../../support/capabilities.ts';

const FORK_FORMAT = `name: sched_process_fork
ID: 312
format:
	field:unsigned short common_type;	offset:0;	size:2;	signed:0;
	field:int common_pid;	offset:4;	size:4;	signed:1;

	field:__data_loc char[] parent_comm;	offset:8;	size:4;	signed:0;
	field:pid_t parent_pid;	offset:12;	size:4;	signed:1;
	field:char comm[16];	offset:16;	size:16;	signed:0;
	field:const struct iovec * uiov;	offset:24;	size:8;	signed:0;

print fmt: "comm=%s pid=%d"`;

test('parseFormatFields: names of plain, array, pointer and __data_loc fields; common_* skipped', () => {
  assert.deepEqual(parseFormatFields(FORK_FORMAT), ['parent_comm', 'parent_pid', 'comm', 'uiov']);
});

const fullCaps = (): Capabilities => fakeCapabilities();

test('listScripts/describeScript: probes and fields read from the scripts; template and depends-any headers', () => {
  const all = listScripts().filter((s) => s.spec.mode === 'tracepoint');
  const by = new Map(all.map((s) => [s.spec.name, s]));
  const madv = by.get('tracepoint/madvise')!;
  assert.deepEqual(madv.spec.probes, ['tracepoint:syscalls:sys_enter_madvise', 'tracepoint:syscalls:sys_exit_madvise']);
  assert.deepEqual(madv.fields['tracepoint:syscalls:sys_enter_madvise'].sort(), ['behavior', 'len_in', 'start']);
  assert.equal(by.get('tracepoint/faults')!.template, 'faults');
  assert.deepEqual(by.get('tracepoint/close')!.dependsAny, ['tracepoint/io_uring_register', 'tracepoint/vmsplice']);
  assert.ok(by.get('tracepoint/fork')!.spec.probes.includes('tracepoint:sched:sched_process_fork'));
});

test('selectScripts: everything present → all but the template; reasons for what is missing', () => {
  const caps = fullCaps();
  const all = selectScripts(caps, 'auto');
  assert.equal(all.mode, 'tracepoint');
  assert.ok(!all.scripts.some((s) => s.name === 'tracepoint/faults'));
  assert.equal(all.scripts.length, caps.scripts.length - 1);
  assert.ok(all.probes.every((p) => p.attached));

  delete caps.tracepoints['vmscan:mm_vmscan_writepage'];
  caps.tracepoints['huge_memory:mm_khugepaged_scan_pmd'].fields = ['mm', 'pfn'];
  const some = selectScripts(caps, 'tracepoint');
  const why = Object.fromEntries(some.probes.filter((p) => !p.attached).map((p) => [p.script, p.reason]));
  assert.deepEqual(why, {
    'tracepoint/writeback_page': 'tracepoint vmscan:mm_vmscan_writepage not found',
    'tracepoint/scan_pmd': 'tracepoint huge_memory:mm_khugepaged_scan_pmd lacks fields referenced, none_or_zero, status, unmapped',
  });
});

test('selectScripts: close.bt needs a writer of its map; the sentinel is required; exclude option', () => {
  const caps = fullCaps();
  delete caps.tracepoints['syscalls:sys_enter_io_uring_register'];
  delete caps.tracepoints['syscalls:sys_enter_vmsplice'];
  const s = selectScripts(caps, 'tracepoint', { exclude: ['tracepoint/migrate_pte'] });
  const why = Object.fromEntries(s.probes.filter((p) => !p.attached).map((p) => [p.script, p.reason]));
  assert.equal(why['tracepoint/close'], 'needs one of tracepoint/io_uring_register, tracepoint/vmsplice');
  assert.equal(why['tracepoint/migrate_pte'], 'excluded by configuration');
  assert.ok(!s.scripts.some((x) => x.name === 'tracepoint/close'));

  const noKill = fullCaps();
  delete noKill.tracepoints['syscalls:sys_enter_kill'];
  const none = selectScripts(noKill, 'tracepoint');
  assert.equal(none.scripts.length, 0);
  assert.match(none.probes[0].reason!, /runner sentinel unavailable/);
});

test('selectScripts: kprobe scripts need the kprobe PMU and their symbols; any-of and optional headers', () => {
  const caps = fullCaps();
  const text = `// kprobe/wp: test
// probes: kprobe:do_wp_page kretprobe:do_wp_page kprobe:folio_add_new_anon_rmap kprobe:page_add_new_anon_rmap kprobe:maybe_gone
// optional: kprobe:maybe_gone
// any-of: kprobe:folio_add_new_anon_rmap kprobe:page_add_new_anon_rmap
kprobe:do_wp_page { @pw_w[tid] = 1; }
`;
  caps.scripts.push(describeScript('/x/bpf/kprobe/wp.bt', 'kprobe', text));
  let s = selectScripts(caps, 'auto');
  assert.equal(s.mode, 'tracepoint');
  assert.equal(s.probes.find((p) => p.script === 'kprobe/wp')!.reason, 'tracepoint mode (kprobes cannot attach on this kernel)');
  s = selectScripts(caps, 'kprobe');
  assert.match(s.probes.find((p) => p.script === 'kprobe/wp')!.reason!, /kprobes cannot attach/);
  caps.kprobes = true;
  caps.kprobeSymbols = { do_wp_page: true, folio_add_new_anon_rmap: false, page_add_new_anon_rmap: true, maybe_gone: false };
  s = selectScripts(caps, 'auto');
  assert.equal(s.mode, 'kprobe');
  assert.ok(s.scripts.some((x) => x.name === 'kprobe/wp'), 'optional missing and one of any-of present: selected');
  assert.ok(s.scripts.some((x) => x.name === 'tracepoint/madvise'), 'kprobe mode keeps the tracepoint set');
  caps.kprobeSymbols.page_add_new_anon_rmap = false;
  s = selectScripts(caps, 'kprobe');
  assert.match(s.probes.find((p) => p.script === 'kprobe/wp')!.reason!, /none of kprobe:folio_add_new_anon_rmap, kprobe:page_add_new_anon_rmap/);
  caps.kprobeSymbols.page_add_new_anon_rmap = true;
  caps.kprobeSymbols.do_wp_page = false;
  s = selectScripts(caps, 'kprobe');
  assert.equal(s.probes.find((p) => p.script === 'kprobe/wp')!.reason, 'symbol do_wp_page not in /proc/kallsyms (inlined, renamed or absent)');
});

test('selectScripts: missing optional probes are pruned from the script text, the rest is kept', () => {
  const caps = fullCaps();
  delete caps.tracepoints['syscalls:sys_enter_clone3'];
  delete caps.tracepoints['syscalls:sys_enter_fork'];
  const s = selectScripts(caps, 'tracepoint');
  const fork = s.scripts.find((x) => x.name === 'tracepoint/fork')!;
  assert.equal(s.probes.find((p) => p.script === 'tracepoint/fork')!.reason, 'without tracepoint:syscalls:sys_enter_clone3, tracepoint:syscalls:sys_enter_fork');
  assert.ok(fork.text && !fork.text.includes('sys_enter_clone3\n{') && !/^tracepoint:syscalls:sys_enter_fork$/m.test(fork.text));
  assert.ok(fork.text.includes('tracepoint:syscalls:sys_enter_vfork') && fork.text.includes('tracepoint:sched:sched_process_fork'));
  assert.ok(!fork.probes.includes('tracepoint:syscalls:sys_enter_clone3'));
  assert.equal(s.scripts.find((x) => x.name === 'tracepoint/madvise')!.text, undefined);
});

test('doctor: ✔/✕ lines, the fix on every failing line, ok only when required checks pass', async () => {
  const good = await runDoctor({ caps: fullCaps() });
  assert.equal(good.ok, true);
  const text = formatDoctor(good);
  assert.match(text, /^✔ root — running as root$/m);
  assert.match(text, /^✕ kprobes \(optional\) — not attachable .* — optional: /m);
  assert.match(text, /^  ✔ tracepoint\/madvise — selected \(2 probes\)$/m);
  assert.match(text, /ok: pinwatch can run here$/);

  const caps = fullCaps();
  caps.root = false;
  caps.bpftrace = null;
  caps.bpftraceError = 'not found on PATH';
  delete caps.tracepoints['vmscan:mm_vmscan_writepage'];
  const bad = await runDoctor({ caps });
  assert.equal(bad.ok, false);
  const t = formatDoctor(bad);
  assert.match(t, /^✕ root — .* — run pinwatch as root \(sudo\)$/m);
  assert.match(t, /^✕ bpftrace — not usable: not found on PATH — apt-get install -y bpftrace$/m);
  assert.match(t, /^  ✕ tracepoint\/writeback_page — left out: tracepoint vmscan:mm_vmscan_writepage not found$/m);
  assert.match(t, /NOT OK/);
  // A left-out script alone does not fail the doctor.
  const caps2 = fullCaps();
  delete caps2.tracepoints['vmscan:mm_vmscan_writepage'];
  assert.equal((await runDoctor({ caps: caps2 })).ok, true);
});
