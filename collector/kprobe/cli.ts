// Stand-alone entry for kprobe mode's start-up pieces (`pinwatch doctor` and `record --mode kprobe` use
// them through the product; the kernel tests use this one in guests, where each node start-up is slow):
// `node --import tsx collector/kprobe/cli.ts doctor|prepare DIR|calibrate`.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { combineKprobeScripts, detectKprobeHost, formatKprobeDoctor, planKprobeScripts, prepareKprobeSet } from './index.ts';
import { VMEMMAP_BASE_DEFAULT, calibrateVmemmap } from './vmemmap.ts';

const [cmd, arg] = process.argv.slice(2);
const t0 = Date.now();
/** Progress on stderr with elapsed ms: start-up is slow in TCG guests and this says where the time goes. */
export function progress(what: string): void {
  process.stderr.write(`[kprobe ${Date.now() - t0} ms] ${what}\n`);
}
if (cmd === 'doctor') {
  const host = detectKprobeHost();
  console.log(formatKprobeDoctor(host, planKprobeScripts(host, { vmemmapBase: VMEMMAP_BASE_DEFAULT })));
} else if (cmd === 'prepare') {
  // also writes DIR/doctor.txt: one start-up for both (node + tsx start-up is slow in TCG guests)
  progress('detect');
  const host = detectKprobeHost();
  progress(`detected: ${host.kallsyms.functions.size} functions, BTF ${host.btf ? host.btf.typeCount + ' types' : 'none'}`);
  const set = await prepareKprobeSet({ dir: arg, host });
  progress(`prepared: vmemmap 0x${set.vmemmap.base.toString(16)} by ${set.vmemmap.method} in ${set.vmemmap.ms} ms, ${set.specs.length} scripts`);
  writeFileSync(join(arg, 'doctor.txt'), formatKprobeDoctor(host, set.plans) + '\n');
  writeFileSync(join(arg, 'combined.bpf'), combineKprobeScripts(set.plans));
  console.log(JSON.stringify({ release: set.release, vmemmap: { ...set.vmemmap, base: '0x' + set.vmemmap.base.toString(16) },
    foll: set.foll, specs: set.specs.map(({ text: _t, ...s }) => s), statuses: set.statuses }, null, 1));
} else if (cmd === 'calibrate') {
  const c = await calibrateVmemmap({ fresh: true });
  console.log(`0x${c.base.toString(16)} (${c.method}, ${c.samples} samples, ${c.ms} ms)`);
} else {
  console.error('usage: cli.ts doctor | prepare DIR | calibrate');
  process.exit(2);
}
