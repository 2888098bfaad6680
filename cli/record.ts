// `pinwatch record`: headless live capture into a SQLite file. Prints the ready line once every probe is
// attached, one line per anomaly as it happens, and on SIGINT/SIGTERM (or --duration) drains bpftrace, flushes
// every row and exits 0. A second signal while stopping exits at once (the store's exit hook still flushes).
import type pino from 'pino';
import type { Anomaly } from '../schema/anomalies.ts';
import type { SessionEndReason, SessionInfo } from '../schema/session.ts';
import type { Hub } from '../collector/publish/hub.ts';
import { EXIT_FAILURE, EXIT_OK, type RecordArgs } from './args.ts';
import { describeFailure } from './errors.ts';
import { formatAnomalyLine, formatReadyLine } from './format.ts';
import { cliLogger, type CliIo } from './io.ts';

/** What record() uses of LiveSession (tests pass a fake). */
export interface RecordSession {
  start(): Promise<SessionInfo>;
  stop(how?: { reason: SessionEndReason; detail?: string }): Promise<void>;
  counters(): { events: number; anomalies: number; lostEvents: number };
}
export type MakeRecordSession = (opts: {
  db: string;
  hub: Hub;
  mode: RecordArgs['mode'];
  config?: { verifyCpuShare?: number };
  logger: pino.Logger;
  onCaptureLost: (message: string) => void;
}) => RecordSession;

const CAPTURE_LOST = 'bpftrace exited';

export async function record(args: RecordArgs, io: CliIo, makeSession?: MakeRecordSession): Promise<number> {
  const { Hub } = await import('../collector/publish/hub.ts');
  const make: MakeRecordSession = makeSession ?? (await import('../collector/live-session.ts').then((m) => (o) => new m.LiveSession(o)));
  const log = cliLogger('pinwatch', io.logLevel);
  const hub = new Hub();
  // A repeated finding is re-sent with a higher count: printed once, when first raised.
  let printedSeq = 0;
  hub.on('anomaly', (a: Anomaly) => {
    if (a.seq <= printedSeq && (a.count ?? 1) > 1) return;
    printedSeq = Math.max(printedSeq, a.seq);
    io.out(formatAnomalyLine(a));
  });
  hub.on('status', (s: { level: string; message: string; fix?: string }) => {
    if (s.level === 'error') io.err(`pinwatch: ${s.message}${s.fix ? `\n  fix: ${s.fix}` : ''}`);
  });
  let stopRequested: ((why: string) => void) | null = null;
  // bpftrace dying over and over (the supervisor gave up) ends the recording (what was captured is kept), exit 1.
  const config = args.verifyCpuShare !== undefined ? { config: { verifyCpuShare: args.verifyCpuShare } } : {};
  const live = make({ db: args.db, hub, mode: args.mode, ...config, logger: log, onCaptureLost: () => stopRequested?.(CAPTURE_LOST) });

  const stopped = new Promise<string>((resolve) => {
    stopRequested = resolve;
  });
  let signals = 0;
  const unsubscribe = io.onSignal((sig) => {
    signals++;
    if (signals === 1) {
      log.info({ signal: sig }, 'stopping: draining bpftrace and flushing the database');
      stopRequested!(sig);
    } else {
      io.err(`pinwatch: ${sig} again: exiting now (queued rows are flushed on exit)`);
      io.exit(130);
    }
  });

  try {
    const started = live.start();
    const first = await Promise.race([started.then(() => null), stopped]);
    if (first !== null) {
      // Interrupted while attaching: stop() waits for start to settle and tears down.
      await live.stop();
      io.err(`pinwatch: stopped (${first}) before capture started`);
      return EXIT_OK;
    }
    const info = await started;
    io.out(formatReadyLine(info.mode, info.probes, args.db));
    let timer: NodeJS.Timeout | null = null;
    if (args.duration !== undefined) timer = setTimeout(() => stopRequested!('duration'), args.duration * 1000);
    const why = await stopped;
    if (timer) clearTimeout(timer);
    await live.stop(why === 'duration' || why === CAPTURE_LOST ? undefined : { reason: 'signal', detail: why });
    const c = live.counters();
    io.err(
      `pinwatch: stopped (${why}): ${c.events} events, ${c.anomalies} anomalies, ${c.lostEvents} lost events; recording in ${args.db}`,
    );
    return why === CAPTURE_LOST ? EXIT_FAILURE : EXIT_OK;
  } catch (err) {
    await live.stop().catch(() => undefined);
    io.err(describeFailure('record', err, io.logLevel));
    return EXIT_FAILURE;
  } finally {
    unsubscribe();
    hub.stop();
  }
}
