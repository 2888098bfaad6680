// Every bpf/kprobe script compiles against THIS machine's BTF without attaching (`bpftrace --emit-elf`:
// parse, semantic checks with BTF types, codegen to a BPF object). This works on hosts without kprobes.
// Also compiles the text specialised for this kernel (collector/kprobe prune + variants), which is what
// record --mode kprobe runs. Needs root and bpftrace: skipped only when those are missing outside CI.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadKprobeScripts } from '../../../collector/kprobe/scripts.ts';
import { detectKprobeHost, planKprobeScripts } from '../../../collector/kprobe/index.ts';

function bpftraceUsable(): string | null {
  if (process.getuid?.() !== 0) return 'not root';
  try { execFileSync('bpftrace', ['--version'], { stdio: 'pipe' }); } catch { return 'bpftrace not installed'; }
  return null;
}
const missing = bpftraceUsable();
const skip = missing && !process.env.CI ? `needs root + bpftrace (${missing})` : false;

function compile(name: string, text: string, dir: string): void {
  const src = join(dir, `${name.replace(/\W/g, '_')}.bt`);
  const elf = join(dir, `${name.replace(/\W/g, '_')}.o`);
  writeFileSync(src, text);
  const r = spawnSync('bpftrace', ['--emit-elf', elf, src], { encoding: 'utf8', timeout: 120_000 });
  const errors = (r.stderr + r.stdout).split('\n').filter((l) => /ERROR/.test(l) && !/RLIMIT_MEMLOCK/.test(l));
  assert.deepEqual(errors, [], `${name} failed to compile:\n${r.stderr}`);
  assert.equal(r.status, 0, `${name}: bpftrace exit ${r.status}\n${r.stderr}`);
  assert.ok(statSync(elf).size > 500, `${name}: no BPF object written`);
}

const scripts = loadKprobeScripts();

test('there is a kprobe script per concern', () => {
  const names = scripts.map((s) => s.header.name);
  for (const n of ['kprobe/gup', 'kprobe/unpin', 'kprobe/wp-page', 'kprobe/unmap', 'kprobe/mkclean', 'kprobe/collapse-file',
    'kprobe/collapse-file-pre-6.1', 'kprobe/split-pmd', 'kprobe/mmu-notifier', 'kprobe/copy-page-range']) assert.ok(names.includes(n), n);
});

for (const s of scripts) {
  test(`${s.header.name} compiles against this kernel's BTF (as written)`, { skip }, () => {
    const dir = mkdtempSync(join(tmpdir(), 'pw-kc-'));
    try { compile(s.header.name, s.text, dir); } finally { rmSync(dir, { recursive: true, force: true }); }
  });
}

test('the set specialised for this kernel compiles (kprobes assumed attachable)', { skip }, () => {
  const host = { ...detectKprobeHost(), kprobesAttachable: true };
  const plans = planKprobeScripts(host, { vmemmapBase: 0xffffea0000000000n });
  const usable = plans.filter((p) => p.usable);
  assert.ok(usable.length >= 8, `only ${usable.map((p) => p.header.name).join(', ')} usable`);
  const dir = mkdtempSync(join(tmpdir(), 'pw-kc-'));
  try { for (const p of usable) compile(p.header.name, p.text!, dir); } finally { rmSync(dir, { recursive: true, force: true }); }
});
