// Guest-side `pinwatch record --mode kprobe`: the product's LiveSession (which specialises the kprobe set for
// the running kernel itself) with two changes for slow guests: bpftrace needs minutes, not the runner's default 60 s, to compile and attach the composed program under
// TCG: the start timeout is raised (PW_START_TIMEOUT_S, default 900); and the perf buffers are 4 MiB per CPU, as
// guest-run.sh's raw capture: node under TCG drains ~100x slower than on a host, and 5.10's VFIO (one GUP call,
// two lines, per page) filled 1 MiB in the nested QEMU's 32 MiB map (15,068 records lost).
//   node --import tsx test/kernels/record-kprobe.ts DB     prints "recording" once attached; SIGINT stops
import { LiveSession } from '../../collector/live-session.ts';
import { BpftraceRunner } from '../../collector/runner/index.ts';

const [db] = process.argv.slice(2);
if (!db) {
  console.error('usage: record-kprobe.ts DB');
  process.exit(2);
}
const startTimeoutS = Number(process.env.PW_START_TIMEOUT_S ?? 900);
const live = new LiveSession({
  db,
  mode: 'kprobe',
  deps: {
    createRunner: (o) => new BpftraceRunner({ ...o, startTimeoutMs: startTimeoutS * 1000, perfRbPages: 1024 }),
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
console.log(`recording: session ${info.id}, mode ${info.mode}, ${info.probes.filter((p) => p.attached).length} scripts attached`);
for (const p of info.probes) if (!p.attached) console.log(`  left out ${p.script}: ${p.reason}`);
