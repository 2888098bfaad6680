// Guest-side `pinwatch record --mode kprobe` with the kprobe set specialised for the running kernel.
// Until collector/live-session.ts does it itself (see the kprobe-mode report), `pinwatch record --mode kprobe`
// selects the raw bpf/kprobe files: default vmemmap base (wrong pfns on any KASLR kernel), optional probes
// not pruned (attach failure where ib_umem_get etc. are absent), no per-kernel variants. This is the same
// LiveSession with only selectScripts swapped for collector/kprobe's prepared set, and BPFTRACE_BTF set.
// bpftrace needs minutes, not the runner's default 60 s, to compile and attach the composed program under
// TCG: the start timeout is raised (PW_START_TIMEOUT_S, default 900).
//   node --import tsx test/kernels/record-kprobe.ts DB SCRIPTDIR     prints "recording" once attached; SIGINT stops
import { LiveSession } from '../../collector/live-session.ts';
import { selectScripts } from '../../collector/capabilities/index.ts';
import { bpftraceEnv, prepareKprobeSet } from '../../collector/kprobe/index.ts';
import { BpftraceRunner } from '../../collector/runner/index.ts';

const [db, dir] = process.argv.slice(2);
if (!db || !dir) {
  console.error('usage: record-kprobe.ts DB SCRIPTDIR');
  process.exit(2);
}
Object.assign(process.env, bpftraceEnv());
const startTimeoutS = Number(process.env.PW_START_TIMEOUT_S ?? 900);
const set = await prepareKprobeSet({ dir });
const live = new LiveSession({
  db,
  mode: 'kprobe',
  deps: {
    createRunner: (o) => new BpftraceRunner({ ...o, startTimeoutMs: startTimeoutS * 1000 }),
    selectScripts: (caps, mode) => {
      const sel = selectScripts(caps, mode);
      return {
        ...sel,
        scripts: [...sel.scripts.filter((s) => s.mode !== 'kprobe'), ...set.specs],
        probes: [...sel.probes.filter((p) => !p.script.startsWith('kprobe/')), ...set.statuses],
      };
    },
  },
});
let stopping = false;
const stop = async (why: string): Promise<void> => {
  if (stopping) return;
  stopping = true;
  await live.stop();
  const c = live.counters();
  console.log(`stopped (${why}): ${c.events} events, ${c.anomalies} anomalies, ${c.lostEvents} lost, ${c.malformed} malformed`);
  process.exit(0);
};
process.on('SIGINT', () => void stop('SIGINT'));
process.on('SIGTERM', () => void stop('SIGTERM'));
const info = await live.start();
console.log(`recording: session ${info.id}, mode ${info.mode}, ${info.probes.filter((p) => p.attached).length} scripts attached; vmemmap 0x${set.vmemmap.base.toString(16)}`);
for (const p of info.probes) if (!p.attached) console.log(`  left out ${p.script}: ${p.reason}`);
