// `pinwatch export --format jsonl|perfetto --db FILE [--out FILE]`: a recording as JSON Lines (stdout by
// default) or as a Perfetto trace (binary: --out, or a redirected stdout). Written to FILE.tmp and renamed, so a
// failed export never leaves half a file under the name asked for.
import { closeSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { EXIT_FAILURE, EXIT_OK, EXIT_USAGE, type ExportArgs } from './args.ts';
import { describeFailure } from './errors.ts';
import type { CliIo } from './io.ts';

export async function exportCommand(args: ExportArgs, io: CliIo, stdoutIsTty = process.stdout.isTTY === true): Promise<number> {
  if (args.format === 'perfetto' && !args.out && stdoutIsTty) {
    io.err('pinwatch export: a Perfetto trace is binary and stdout is a terminal\n  fix: pass --out trace.pftrace (or redirect stdout)');
    return EXIT_USAGE;
  }
  const { RecordingRows } = await import('../collector/export/recording.ts');
  let rec: InstanceType<typeof RecordingRows> | null = null;
  const tmp = args.out ? `${args.out}.tmp-${process.pid}` : null;
  const fd = tmp ? openSync(tmp, 'w') : 1;
  try {
    rec = new RecordingRows(args.db);
    if (args.format === 'jsonl') {
      const { jsonlLines } = await import('../collector/export/jsonl.ts');
      let buf = '';
      let lines = 0;
      for (const line of jsonlLines(rec)) {
        buf += line;
        lines++;
        if (buf.length > 1 << 20) {
          writeSync(fd, buf);
          buf = '';
        }
      }
      writeSync(fd, buf);
      if (tmp) closeSync(fd), renameSync(tmp, args.out!);
      io.err(`pinwatch export: ${lines} JSON lines${args.out ? ` to ${args.out}` : ''}`);
    } else {
      const { perfettoTrace } = await import('../collector/export/perfetto.ts');
      const t = perfettoTrace(rec);
      writeSync(fd, t.bytes);
      if (tmp) closeSync(fd), renameSync(tmp, args.out!);
      io.err(
        `pinwatch export: Perfetto trace, ${t.tracks} tracks, ${t.slices} pin slices, ${t.instants} instant events` +
          `${t.eventsLeftOut ? ` (${t.eventsLeftOut} events left out)` : ''}${args.out ? ` to ${args.out}` : ''}; open it in https://ui.perfetto.dev`,
      );
    }
    return EXIT_OK;
  } catch (err) {
    if (tmp) {
      try {
        closeSync(fd);
      } catch {
        // already closed before the rename failed
      }
      rmSync(tmp, { force: true });
    }
    io.err(describeFailure('export', err, io.logLevel));
    return EXIT_FAILURE;
  } finally {
    rec?.close();
  }
}
