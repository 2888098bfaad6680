// A stand-in for the bpftrace binary in unit tests: a Node script that reads the composed program (last argv),
// finds the ready tag in the runner's sentinel, and prints JSON lines according to FAKE_MODE.
import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const SCRIPT = String.raw`
const fs = require('fs');
const file = process.argv[process.argv.length - 1];
const prog = fs.readFileSync(file, 'utf8');
const tag = /printf\("ready\\t%s\\t%llu", "([^"]+)"/.exec(prog)[1];
const mode = process.env.FAKE_MODE;
const dir = process.env.FAKE_DIR;
const now = () => Number(process.hrtime.bigint());
const line = (data) => process.stdout.write(JSON.stringify({ type: 'printf', data }) + '\n');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const fault = (ts, addr) => line('fault\t' + ts + '\t4242\t4242\t' + addr + '\t6\t1000\tfx');
const R = 2 ** 21 * 100; // region 100 of pid 4242
(async () => {
  if (mode === 'fail') {
    process.stderr.write('WARNING: couldn\'t set RLIMIT_MEMLOCK\n');
    process.stderr.write(file + ':3-5: ERROR: tracepoint not found: pinwatch_none:no_such_event\n');
    process.exit(1);
  }
  if (mode === 'basic') {
    process.stderr.write('ERROR: Unknown error -1: couldn\'t set RLIMIT_MEMLOCK for bpftrace.\n');
    line('exit\t1\t10\t10\tbefore');
    line('ready\t' + tag + '\t' + now());
    // one record split across two writes
    const rec = JSON.stringify({ type: 'printf', data: 'exit\t2\t11\t11\tsplit' }) + '\n';
    process.stdout.write(rec.slice(0, 20));
    await sleep(50);
    process.stdout.write(rec.slice(20) + 'WARNING: plain text\n');
    process.on('SIGINT', () => {
      line('exit\t3\t12\t12\tdrained');
      process.stdout.write('{"type": "lost_events", "data": {"events": 5}}\n{"type": "printf", "data": "exit\\t4\\t13\\t13\\tlast-no-newline"}');
      process.exit(0);
    });
    setInterval(() => {}, 1000);
    return;
  }
  if (mode === 'file') {
    // Hostile output: the bytes of FAKE_FILE as they are (invalid UTF-8, NULs, over-long lines), after ready.
    line('ready\t' + tag + '\t' + now());
    const data = fs.readFileSync(process.env.FAKE_FILE);
    for (let i = 0; i < data.length; i += 65536) {
      if (!process.stdout.write(data.subarray(i, i + 65536))) await new Promise((r) => process.stdout.once('drain', r));
    }
    process.on('SIGINT', () => process.exit(0));
    setInterval(() => {}, 1000);
    return;
  }
  if (mode === 'stubborn') {
    process.on('SIGINT', () => {});
    await sleep(20);
    line('ready\t' + tag + '\t' + now());
    setInterval(() => {}, 1000);
    return;
  }
  if (mode === 'faults') {
    const gen = Number(/faults#(\d+)/.exec(tag)[1]);
    if (gen === 1) {
      line('ready\t' + tag + '\t' + now());
      fault(now(), R + 4096); // X
      let T = 0;
      while (!T) {
        await sleep(5);
        try { T = Number(fs.readFileSync(dir + '/ready2', 'utf8')); } catch {}
      }
      fault(T - 10, R + 8 * 4096); // S: straddles the cutover (gen 2 prints it at T + 20)
      fault(T - 1000, R + 2 * 4096); // Z: before the cutover, delivered from here
      fault(T + 500, R + 3 * 4096); // Y: after the cutover, gen 2's copy is the one delivered
      process.on('SIGINT', () => {
        fault(T + 2000, R + 5 * 4096); // W: late, after the cutover: dropped (gen 2 owns it)
        process.exit(0);
      });
      setInterval(() => {}, 1000);
      return;
    }
    fault(now(), R + 2 * 4096); // Z2: before this process's ready: dropped (gen 1 owns it)
    const T = now();
    // Tell gen 1 the cutover first and give it time to print its side: in reality the old process keeps
    // printing until it is stopped, which happens only after this ready line is read.
    fs.writeFileSync(dir + '/ready2', String(T));
    await sleep(150);
    line('ready\t' + tag + '\t' + T);
    fault(T + 20, R + 8 * 4096); // S again
    fault(T + 500, R + 3 * 4096); // Y
    fault(T + 10000000, R + 6 * 4096); // V
    fault(T + 10000001, 2 ** 21 * 101 + 4096); // outside the exact regions: dropped
    process.on('SIGINT', () => process.exit(0));
    setInterval(() => {}, 1000);
  }
})();
`;

/** Write the fake into a temp dir; returns its path (executable) and the dir. */
export function makeFakeBpftrace(): { bin: string; dir: string } {
  const dir = mkdtempSync(join(tmpdir(), 'pw-fake-bpftrace-'));
  const bin = join(dir, 'bpftrace');
  writeFileSync(bin, `#!${process.execPath}\n${SCRIPT}`);
  chmodSync(bin, 0o755);
  return { bin, dir };
}
