// Micro-benchmark of collector/parse: lines/s through parseLine on one core, with a realistic mix of
// bpftrace 0.17 `-f json` printf records (mostly madvise/munmap, some pins, faults, a few escaped comms).
// Run: node --import tsx bench/parse.bench.ts [seconds]
import { parseLine } from '../collector/parse/index.ts';
import type { ParseSink } from '../collector/contracts.ts';
import type { TraceEvent } from '../schema/events.ts';

const rec = (data: string) => '{"type": "printf", "data": ' + JSON.stringify(data) + '}';
const lines: string[] = [];
for (let i = 0; i < 100_000; i++) {
  const ts = 400_000_000_000 + i * 731;
  const pid = 1000 + (i % 37);
  const r = i % 100;
  if (r < 50) lines.push(rec(`madvise\t${ts}\t${pid}\t${pid + 1}\t${139779106426880 + i * 4096}\t4096\t4\t0\tworker-${i % 7}`));
  else if (r < 70) lines.push(rec(`munmap\t${ts}\t${pid}\t${pid}\t${139779106426880 + i * 4096}\t1048576\t0\tjemalloc_bg_thd`));
  else if (r < 80) lines.push(rec(`pin_iovec\t${ts}\t${pid}\t${pid}\tio_uring\t3\t0\t${i % 64}\t${140275911491584 + i * 8192}\t8192\tiou-server`));
  else if (r < 85) lines.push(rec(`pin_result\t${ts}\t${pid}\t${pid}\tio_uring\t3\t0\t64\t0\t0xffff888100072bc0\tiou-server`));
  else if (r < 95) lines.push(rec(`fault\t${ts}\t${pid}\t${pid}\t${139779106430976 + i}\t7\t94823749234\tapp`));
  else if (r < 99) lines.push(rec(`mremap\t${ts}\t${pid}\t${pid}\t4096\t8192\t16384\t1\t0\t65536\tapp`));
  else lines.push(rec(`madvise\t${ts}\t${pid}\t${pid}\t4096\t4096\t4\t0\tq"uo\\te`)); // slow path
}

let events = 0;
let checksum = 0;
const sink: ParseSink = {
  event(e: TraceEvent) {
    events++;
    checksum += e.tsNs & 0xff;
  },
  lost() {},
  ready() {},
  malformed(_l, reason) {
    throw new Error(reason);
  },
};

const seconds = Number(process.argv[2] ?? 3);
// warm-up
for (let k = 0; k < 3; k++) for (const l of lines) parseLine(l, sink);
events = 0;
const t0 = process.hrtime.bigint();
const c0 = process.cpuUsage();
let n = 0;
while (Number(process.hrtime.bigint() - t0) < seconds * 1e9) {
  for (let i = 0; i < lines.length; i++) parseLine(lines[i], sink);
  n += lines.length;
}
const dt = Number(process.hrtime.bigint() - t0) / 1e9;
const cu = process.cpuUsage(c0);
// CPU seconds of this process: the machine is shared, wall time includes time spent descheduled.
const cpu = (cu.user + cu.system) / 1e6;
const bytes = lines.reduce((a, l) => a + l.length + 1, 0) / lines.length;
console.log(
  JSON.stringify({ bench: 'parse', linesPerCpuSec: Math.round(n / cpu), linesPerWallSec: Math.round(n / dt), events, avgLineBytes: Math.round(bytes), seconds: +dt.toFixed(2), checksum: checksum & 0xffff }),
);
