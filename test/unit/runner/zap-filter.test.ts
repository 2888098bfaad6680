// The in-kernel zap/remap filter (bpf/tracepoint/README.md "Volume") as program text, and the seeding of
// @pw_watch at (re)start from a /proc discovery: no bpftrace, no root (the live tests run the real thing).
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { BPF_DIR } from '../../../collector/capabilities/index.ts';
import { discover, isPinDevice, watchPids, type Discovery } from '../../../collector/discover/index.ts';
import { composeProgram, parseScript, setZapFilter, watchSeedScript, type ScriptInput } from '../../../collector/runner/program.ts';
import { tempDir } from '../store/helpers.ts';

const ZAP_SCRIPTS = ['munmap', 'mmap_fixed', 'mremap', 'shm', 'madvise'] as const;
const text = (name: string) => readFileSync(join(BPF_DIR, 'tracepoint', `${name}.bt`), 'utf8');
const input = (name: string): ScriptInput => ({ name: `tracepoint/${name}`, file: join(BPF_DIR, 'tracepoint', `${name}.bt`), mode: 'tracepoint', probes: [] });
const GATE = 'PW_ZAP_FILTER == 0 || @pw_watch[pid] == 2';

/** The body of the block attached to `probe` (the first one). */
function block(src: string, probe: string): { body: string; head: string } {
  const b = parseScript(src).blocks.find((x) => x.attach.includes(probe));
  assert.ok(b, `no block on ${probe}`);
  return { body: b.body, head: src.slice(b.start, b.end - b.body.length - 2) };
}

/** The condition of the `if` that encloses the first printf of a body. */
function printfGate(body: string): string {
  const at = body.indexOf('printf(');
  assert.ok(at > 0, 'no printf');
  const ifAt = body.lastIndexOf('if (', at);
  assert.ok(ifAt >= 0, 'printf is not inside an if');
  const open = body.indexOf('{', ifAt);
  assert.ok(open < at, 'the if closes before the printf');
  return body.slice(ifAt + 4, body.lastIndexOf(')', open)).replace(/\s+/g, ' ');
}

describe('zap/remap scripts: printed only for processes that pin, decided at the syscall exit', () => {
  for (const name of ZAP_SCRIPTS) {
    test(`${name}.bt: the enter stashes for every process, the exit prints under the watch gate`, () => {
      const src = text(name);
      const sys = name === 'mmap_fixed' ? 'mmap' : name === 'shm' ? 'shmdt' : name;
      const enter = block(src, `tracepoint:syscalls:sys_enter_${sys}`);
      assert.doesNotMatch(enter.head + enter.body, /@pw_watch\[pid\] == 2|@pw_[bf]span/, 'the enter must not decide: a pin registered meanwhile counts');
      const exit = block(src, `tracepoint:syscalls:sys_exit_${sys}`).body;
      // madvise decides in steps ($show, next test); the first is the same gate
      const gate = name === 'madvise' ? exit.slice(exit.indexOf('if (') + 4, exit.indexOf(') {', exit.indexOf('if ('))) : printfGate(exit);
      assert.ok(gate.startsWith(GATE), `${name}: gate ${gate}`);
      assert.match(src, /^#define PW_ZAP_FILTER 1$/m);
      // A script alone must compile on 0.17: the shared maps it reads are defined (BEGIN or a write) in it.
      for (const map of ['@pw_watch', '@pw_bspan', '@pw_fspan']) {
        if (src.includes(`${map}[pid]`)) assert.match(src, new RegExp(`${map.replace('@', '@')}\\[[^\\]]+\\] = `), `${name}: ${map} read but never written`);
      }
      assert.match(src, /^\/\/ Maps:[\s\S]*@pw_watch/m, `${name}: the header names the shared map`);
    });
  }

  test('madvise.bt: MADV_REMOVE stays host-wide, the four fork advices up to a per-process cap, nothing else', () => {
    const body = block(text('madvise'), 'tracepoint:syscalls:sys_exit_madvise').body;
    assert.equal(printfGate(body), '$show');
    const shows = body.split('$show = 1;').slice(0, -1).map((before) => before.slice(before.lastIndexOf('if (')));
    assert.equal(shows.length, 2);
    assert.match(shows[0], /^if \(PW_ZAP_FILTER == 0 \|\| @pw_watch\[pid\] == 2 \|\| \$b == 9\) \{\s*$/); // MADV_REMOVE
    assert.match(shows[1], /^if \(\$n < PW_FORK_ADVICE_CAP\) \{\s*$/);
    assert.match(body, /if \(\$show == 0 && \(\$b == 10 \|\| \$b == 11 \|\| \$b == 18 \|\| \$b == 19\)\) \{/); // DONTFORK, DOFORK, WIPEONFORK, KEEPONFORK
    assert.match(text('madvise'), /^#define PW_FORK_ADVICE_CAP 64$/m);
    assert.match(text('madvise'), /MADV_REMOVE \(9\): punches a hole/);
    // At the cap the span goes (its unmaps stop), and both maps go at exit.
    assert.match(body, /if \(\$n == PW_FORK_ADVICE_CAP\) \{\s*@pw_fkn\[pid\] = \$n \+ 1;\s*delete\(@pw_fspan\[pid\]\);/);
    assert.match(block(text('exit'), 'tracepoint:sched:sched_process_exit').body, /delete\(@pw_fkn\[pid\]\);\s*delete\(@pw_fspan\[pid\]\);/);
  });

  test('unmaps over the spans the collector keeps for a non-pinning process are printed (bspan, fspan), kept by their writers', () => {
    for (const name of ['munmap', 'mmap_fixed', 'mremap', 'shm']) {
      const gate = printfGate(block(text(name), `tracepoint:syscalls:sys_exit_${name === 'mmap_fixed' ? 'mmap' : name === 'shm' ? 'shmdt' : name}`).body);
      assert.match(gate, /\$z\.1/, name);
      assert.match(gate, /\$f\.1/, name);
    }
    assert.match(block(text('madvise'), 'tracepoint:syscalls:sys_exit_madvise').body, /@pw_fspan\[pid\] = \(\$lo, \$hi\)/);
    assert.match(block(text('mmap_backing'), 'tracepoint:syscalls:sys_exit_mmap').body, /@pw_bspan\[pid\] = \(\$lo, \$hi\)/);
    assert.match(block(text('mmap_backing'), 'tracepoint:sched:sched_process_exit').body, /delete\(@pw_bspan\[pid\]\)/);
  });

  test('composed: one PW_ZAP_FILTER definition; setZapFilter turns the filter off and on', () => {
    const names = ['io_uring_register', 'vmsplice', 'ioctl_dma', 'fork', 'exit', 'mmap_backing', ...ZAP_SCRIPTS, 'uring_enter', 'close'];
    const prog = composeProgram(names.map(input));
    assert.equal(prog.match(/^#define PW_ZAP_FILTER/gm)?.length, 1);
    assert.match(prog, /^#define PW_ZAP_FILTER 1$/m);
    const off = setZapFilter(prog, false);
    assert.match(off, /^#define PW_ZAP_FILTER 0$/m);
    assert.equal(setZapFilter(off, true), prog);
    // One BEGIN, with the shared maps' definitions merged into it.
    assert.equal(prog.match(/^BEGIN$/gm)?.length, 1);
    assert.match(prog, /@pw_fspan\[0\] = \(\(uint64\)0, \(uint64\)0\);/);
    // Every pin source marks its process before the zap scripts look.
    for (const n of ['io_uring_register', 'vmsplice', 'ioctl_dma']) assert.match(text(n), /@pw_watch\[pid\] = 2;/, n);
  });

  test('kprobe/gup.bt: a named caller other than O_DIRECT, or an unnamed FOLL_LONGTERM call, marks the process', () => {
    const src = readFileSync(join(BPF_DIR, 'kprobe', 'gup.bt'), 'utf8');
    assert.match(src, /^#define PW_FOLL_LONGTERM /m);
    assert.match(src, /if \(\$ret > 0 && \$c != 6 && \(\$c != 0 \|\| \(@gflags\[tid\] & PW_FOLL_LONGTERM\) != 0\)\) \{\n\s*@pw_watch\[pid\] = 2;/);
  });
});

/** A fake /proc: pid → status fields, fds (name → link target), fdinfo texts. */
function fakeProc(dir: string, procs: Record<number, { vmPin?: number; vmLck?: number; fds?: Record<string, string>; fdinfo?: Record<string, string> }>): string {
  for (const [pid, p] of Object.entries(procs)) {
    const base = join(dir, pid);
    mkdirSync(join(base, 'fd'), { recursive: true });
    mkdirSync(join(base, 'fdinfo'), { recursive: true });
    writeFileSync(join(base, 'status'), `Name:\tp${pid}\nVmLck:\t${p.vmLck ?? 0} kB\nVmPin:\t${p.vmPin ?? 0} kB\n`);
    for (const [fd, target] of Object.entries(p.fds ?? {})) symlinkSync(target, join(base, 'fd', fd));
    for (const [fd, info] of Object.entries(p.fdinfo ?? {})) writeFileSync(join(base, 'fdinfo', fd), info);
  }
  return dir;
}

const RING = 'ino:\t4242\nUserBufs:\t1\n    0: 0x7f0000000000/8192\n';

describe('seeding @pw_watch from /proc (start and every restart)', () => {
  test('watchPids: VmPin, VmLck, io_uring buffers (a shared ring for each holder), VFIO / iommufd / RDMA devices', (t) => {
    const proc = fakeProc(tempDir(t), {
      100: { vmLck: 4 }, // VFIO type1 DMA maps (or mlock)
      101: { vmPin: 8 },
      102: { fds: { 5: '/dev/vfio/12' } },
      103: { fds: { 3: '/dev/null', 4: 'anon_inode:[io_uring]' }, fdinfo: { 4: 'ino:\t99\nUserBufs:\t0\n' } }, // a ring without buffers
      104: { fds: { 7: 'anon_inode:[io_uring]' }, fdinfo: { 7: RING } },
      105: { fds: { 7: 'anon_inode:[io_uring]' }, fdinfo: { 7: RING } }, // fork child sharing 104's ring
      106: { fds: { 3: '/dev/iommu', 4: '/dev/infiniband/uverbs0' } },
      107: {},
    });
    const d = discover(proc, -1);
    assert.equal(d.rings.length, 1, 'a shared ring is one set of buffers');
    assert.deepEqual(d.ringHolders?.sort(), [104, 105]);
    assert.deepEqual(watchPids(d), [100, 101, 102, 104, 105, 106]);
    assert.deepEqual(d.devices?.map((x) => [x.pid, x.path]), [[102, '/dev/vfio/12'], [106, '/dev/iommu'], [106, '/dev/infiniband/uverbs0']]);
    for (const [path, yes] of [['/dev/vfio/vfio', true], ['/dev/vfio/devices/vfio0', true], ['/dev/iommu', true], ['/dev/infiniband/uverbs1', true], ['/dev/infiniband/rdma_cm', false], ['/dev/kvm', false]] as const) assert.equal(isPinDevice(path), yes, path);
  });

  test('watchPids of an older Discovery (no devices / ringHolders) still takes memory and rings', () => {
    const d: Discovery = { rings: [{ pid: 9, comm: 'x', fd: 3, buffers: [] }], memory: [{ pid: 8, comm: 'y', vmPinPages: 0, vmLckPages: 1 }, { pid: 7, comm: 'z', vmPinPages: 0, vmLckPages: 0 }], processes: 3, ms: 0 };
    assert.deepEqual(watchPids(d), [8, 9]);
  });

  test('the seed is a BEGIN writing @pw_watch = 2 for each pid, only when the program uses the map', () => {
    const scripts = [input('munmap'), input('close')];
    const seed = watchSeedScript({ pids: [100, 104], fds: [[104, 7]] }, scripts);
    assert.equal(seed.text, 'BEGIN\n{\n  @pw_watch[100] = 2;\n  @pw_watch[104] = 2;\n  @pw_watchfd[104, 7] = 1;\n}\n');
    // Composed with the scripts, its writes land in the one BEGIN, before any probe can fire.
    const prog = composeProgram([...scripts, seed]);
    const begin = prog.slice(prog.indexOf('BEGIN\n{'), prog.indexOf('\n}\n', prog.indexOf('BEGIN\n{')));
    assert.match(begin, /@pw_watch\[100\] = 2;/);
    assert.match(begin, /@pw_bspan\[0\]/);
  });
});
