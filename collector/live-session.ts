// A live capture, wired end to end: capabilities → script selection → SQLite store → Collector (model, rules,
// verification) → bpftrace runner and fault watcher, with the store and the publish hub as the collector's sinks.
// `pinwatch record` and `pinwatch serve` both run one. start() resolves once every probe is attached; stop()
// drains bpftrace, runs a last verification pass and flushes every row before it resolves.
// Supervision: both bpftrace processes (the main set, the fault watcher) are restarted when they die, with a
// backoff; each death is a capture gap (collector.gapOpened/gapClosed: stored, published, pins re-read against
// pagemap after it). Before the first start and each restart /proc is scanned for what is already pinned
// (collector/discover), and the new program is told which processes hold pins (its in-kernel filters).
// Repeated failures (5 within a minute) end the capture: onCaptureLost, session ended 'bpftrace-gave-up'.
import { hostname } from 'node:os';
import pino from 'pino';
import type { CaptureGap, CaptureProcess } from '../schema/reliability.ts';
import type { SessionEndReason, SessionInfo } from '../schema/session.ts';
import type { Capabilities, SelectMode, Selection } from './capabilities/index.ts';
import { CaptureLoss } from './capture-loss.ts';
import type { CollectorConfig, CollectorSink, FaultRegion, ParseSink, ScriptSpec, WatchSeed } from './contracts.ts';
import type { Collector, CollectorOptions } from './pipeline.ts';
import { receivedByKind } from './parse/index.ts';
import type { Hub } from './publish/hub.ts';
import * as runnerProgram from './runner/program.ts';
import { watchPids, type Discovery } from './discover/index.ts';
import { RestartPolicy, Supervisor, type RestartPolicyOptions } from './runner/supervisor.ts';
import { Store, StoreError, type StoreOptions } from './store/index.ts';

/** Live capture cannot run on this host (not root, no bpftrace, no tracefs, nothing attachable). */
export class CaptureUnavailableError extends Error {
  readonly reason: string;
  readonly fix: string;
  constructor(reason: string, fix: string) {
    super(`live capture unavailable: ${reason}`);
    this.name = 'CaptureUnavailableError';
    this.reason = reason;
    this.fix = fix;
  }
}

/** What LiveSession needs of the bpftrace runner and the fault watcher (collector/runner). */
export interface RunnerLike {
  start(): Promise<void>;
  stop(): Promise<void>;
}
export interface FaultWatcherLike {
  setRegions(r: FaultRegion[]): void;
  stop(): Promise<void>;
  /** Start a fault process again after it died (FaultWatcher). */
  revive?(): Promise<void>;
  readonly readyTsNs?: number | null;
}
export interface CollectorLike {
  readonly parseSink: ParseSink;
  readonly counters: { events: number; anomalies: number; lostEvents: number; malformed: number };
  verifyNow(): void;
  close(): void;
  gapOpened?(process: CaptureProcess, cause: string): CaptureGap;
  gapClosed?(g: CaptureGap, endNs?: number): void;
  gapUpdated?(g: CaptureGap): void;
  adoptDiscovery?(d: Discovery): number;
  watchSeed?(extraPids?: readonly number[]): WatchSeed;
}

/** Seams for tests (fakes of the host and of bpftrace); production uses the real modules. */
export interface LiveSessionDeps {
  probeCapabilities(): Promise<Capabilities>;
  selectScripts(caps: Capabilities, mode: SelectMode): Selection;
  createCollector(opts: CollectorOptions): CollectorLike;
  createRunner(opts: {
    scripts: ScriptSpec[];
    sink: ParseSink;
    /** Count event lines per kind in the kernel (runner/program.ts countSent): lost events per kind. */
    countSent?: boolean;
    bpftrace?: string;
    onStderr: (line: string) => void;
    onExit: (code: number | null, signal: string | null) => void;
  }): RunnerLike;
  createFaultWatcher(opts: { sink: ParseSink; bpftrace?: string; onStderr: (line: string) => void; onDied?: (cause: string) => void }): FaultWatcherLike;
  /** Scan /proc for what is already pinned (collector/discover); absent: no discovery. */
  discover?(): Discovery;
  /** The shared zero page's pfn (collector/verify/zero-pfn.ts); absent or null: not known. */
  learnZeroPfn?(): number | null;
  /**
   * Kprobe mode: replace the raw bpf/kprobe scripts by the set specialised for this kernel (optional probes
   * pruned, per-version variants, calibrated vmemmap base) and say which FOLL_* numbering the kernel uses.
   */
  specialiseKprobes(selection: Selection): Promise<{ selection: Selection; follNumbering?: CollectorOptions['follNumbering'] }>;
}

export interface LiveSessionOptions {
  /** SQLite file to record into (created when missing; an existing pinwatch file gets a new session). */
  db: string;
  hub?: Hub;
  mode?: SelectMode;
  config?: Partial<CollectorConfig>;
  logger?: pino.Logger;
  store?: Omit<StoreOptions, 'readonly' | 'onError' | 'onRecovered'>;
  /** bpftrace kept dying and was given up (the session keeps what it had; call stop()). */
  onCaptureLost?: (message: string) => void;
  /** Backoff and give-up limits of the bpftrace restarts (tests shorten them). */
  restartPolicy?: RestartPolicyOptions;
  deps?: Partial<LiveSessionDeps>;
}

export interface LiveSessionCounters {
  events: number;
  anomalies: number;
  lostEvents: number;
  malformed: number;
}

async function realDeps(): Promise<LiveSessionDeps> {
  const [caps, pipeline, runner, discoverModule, zero] = await Promise.all([
    import('./capabilities/index.ts'),
    import('./pipeline.ts'),
    import('./runner/index.ts'),
    import('./discover/index.ts'),
    import('./verify/zero-pfn.ts'),
  ]);
  return {
    probeCapabilities: () => caps.probeCapabilities(),
    selectScripts: (c, m) => caps.selectScripts(c, m),
    createCollector: (o) => new pipeline.Collector(o),
    createRunner: (o) => new runner.BpftraceRunner(o),
    createFaultWatcher: (o) => new runner.FaultWatcher(o),
    discover: () => discoverModule.discover(),
    learnZeroPfn: () => zero.learnZeroPfn(),
    specialiseKprobes: async (selection) => {
      const kprobe = await import('./kprobe/index.ts');
      // bpftrace 0.17 finds no BTF on some kernels (5.10) unless told where it is; the fault watcher needs it too.
      Object.assign(process.env, kprobe.bpftraceEnv());
      const set = await kprobe.prepareKprobeSet();
      return {
        selection: {
          ...selection,
          scripts: [...selection.scripts.filter((s) => s.mode !== 'kprobe'), ...set.specs],
          probes: [...selection.probes.filter((p) => !p.script.startsWith('kprobe/')), ...set.statuses],
        },
        // The kprobe detector resolves the FOLL_* table from BTF; the model names it by the 6.3 renumbering.
        follNumbering: set.foll.LONGTERM === 0x100 ? '6.3' : 'pre-6.3',
      };
    },
  };
}

/** Why capture cannot run, or null. */
export function captureProblem(caps: Capabilities): CaptureUnavailableError | null {
  if (!caps.root) {
    return new CaptureUnavailableError(
      `not running as root (uid ${process.getuid?.() ?? '?'}): bpftrace needs root to attach probes and /proc/PID/pagemap hides pfns from other users`,
      'run it as root, e.g. sudo npx pinwatch …',
    );
  }
  if (!caps.bpftrace) {
    return new CaptureUnavailableError(`bpftrace is not usable: ${caps.bpftraceError ?? 'not found on PATH'}`, 'apt-get install -y bpftrace');
  }
  if (!caps.tracefs.mounted) {
    return new CaptureUnavailableError(
      `tracefs is not mounted at ${caps.tracefs.path}${caps.tracefs.error ? ` (${caps.tracefs.error})` : ''}`,
      `mount -t tracefs nodev ${caps.tracefs.path}`,
    );
  }
  return null;
}

export class LiveSession {
  readonly hub: Hub | undefined;
  readonly log: pino.Logger;
  private readonly opts: LiveSessionOptions;
  private store: Store | null = null;
  private collector: CollectorLike | null = null;
  private runner: Supervisor | null = null;
  private faults: FaultWatcherLike | null = null;
  private info: SessionInfo | null = null;
  private selection: Selection | null = null;
  private startP: Promise<SessionInfo> | null = null;
  private stopP: Promise<void> | null = null;
  private readonly loss = new CaptureLoss(receivedByKind);
  private stopping = false;
  private lastCounters: LiveSessionCounters = { events: 0, anomalies: 0, lostEvents: 0, malformed: 0 };
  private deps: LiveSessionDeps | null = null;
  /** How the session ends (stop() may say otherwise; giving up sets it). */
  private endHow: { reason: SessionEndReason; detail?: string } = { reason: 'clean' };
  /** Open gaps per process (null: capturing). */
  private readonly openGaps: Record<CaptureProcess, CaptureGap | null> = { main: null, faults: null };
  private faultPolicy: RestartPolicy | null = null;
  /** Restarts done, for status and tests. */
  readonly restarts: Record<CaptureProcess, number> = { main: 0, faults: 0 };
  /** Wall ms from death to the replacement's ready, last restart of each. */
  readonly restartMs: Record<CaptureProcess, number | null> = { main: null, faults: null };

  constructor(opts: LiveSessionOptions) {
    this.opts = opts;
    this.hub = opts.hub;
    this.log = opts.logger ?? pino({ name: 'pinwatch', level: process.env.PINWATCH_LOG_LEVEL ?? 'info' }, pino.destination(2));
  }

  /** The session row, once started. */
  session(): SessionInfo | null {
    return this.info;
  }

  /** The selected scripts and the left-out ones with reasons, once started. */
  scripts(): Selection | null {
    return this.selection;
  }

  counters(): LiveSessionCounters {
    const c = this.collector?.counters;
    if (c) this.lastCounters = { events: c.events, anomalies: c.anomalies, lostEvents: c.lostEvents, malformed: c.malformed };
    return { ...this.lastCounters };
  }

  /** Probe the host, open the store, start the collector and bpftrace; resolves once every probe is attached. */
  start(): Promise<SessionInfo> {
    this.startP ??= this.doStart().catch(async (err) => {
      await this.teardown().catch((e: Error) => this.log.error({ err: e.message }, 'cleanup after a failed start failed'));
      throw err;
    });
    return this.startP;
  }

  private async doStart(): Promise<SessionInfo> {
    const deps: LiveSessionDeps = { ...(await realDeps()), ...this.opts.deps };
    this.deps = deps;
    const caps = await deps.probeCapabilities();
    const problem = captureProblem(caps);
    if (problem) throw problem;
    let selection = deps.selectScripts(caps, this.opts.mode ?? 'auto');
    let follNumbering: CollectorOptions['follNumbering'];
    if (selection.mode === 'kprobe') ({ selection, follNumbering } = await deps.specialiseKprobes(selection));
    this.selection = selection;
    if (selection.scripts.length === 0) {
      const why = selection.probes.filter((p) => !p.attached).map((p) => `${p.script}: ${p.reason ?? 'left out'}`);
      throw new CaptureUnavailableError(
        `no bpftrace script can attach on this kernel (${why.slice(0, 3).join('; ')}${why.length > 3 ? '; …' : ''})`,
        'run `pinwatch doctor` to see what is missing',
      );
    }
    this.checkStopping();

    const store = Store.open(this.opts.db, {
      ...this.opts.store,
      onError: (err) => {
        this.log.error({ db: this.opts.db, err: err.message }, 'writing to the database failed; rows are kept and retried');
        this.hub?.setStatus({ level: 'error', message: err.message, fix: err instanceof StoreError ? err.fix : undefined });
      },
      onRecovered: () => {
        this.log.info({ db: this.opts.db }, 'writing to the database works again');
        this.hub?.setStatus({ level: 'ok', message: `recording to ${this.opts.db}` });
      },
    });
    this.store = store;
    const next = store.nextSeqs();
    this.info = store.startSession({
      host: hostname(),
      kernel: caps.kernelRelease,
      bpftraceVersion: caps.bpftrace!.version,
      mode: selection.mode,
      probes: selection.probes,
    });
    this.hub?.setSession(this.info);

    const sinks: CollectorSink[] = this.hub ? [store, this.hub] : [store];
    const zeroPfn = this.opts.config?.zeroPfn ?? deps.learnZeroPfn?.() ?? null;
    this.log.info({ zeroPfn }, zeroPfn === null ? 'shared zero page not known: no pfn excluded' : 'shared zero page');
    let sinkErrorReported = false;
    this.collector = deps.createCollector({
      sinks,
      config: { submissionsTraced: selection.scripts.some((s) => s.name === 'tracepoint/uring_enter'), ...this.opts.config, zeroPfn },
      ...(follNumbering ? { follNumbering } : {}),
      ...next,
      onFaultRegions: (r) => this.faults?.setRegions(r),
      onSinkError: (err) => {
        if (sinkErrorReported) return;
        sinkErrorReported = true;
        this.log.error({ err: (err as Error)?.message ?? String(err) }, 'a collector sink failed (further failures are only counted)');
      },
      onRuleError: (rule, err) => this.log.error({ rule, err: (err as Error)?.message ?? String(err) }, 'a rule failed'),
      onMalformed: (line, reason) => this.log.debug({ line: line.slice(0, 200), reason }, 'malformed bpftrace line'),
      onMessage: (text) => this.log.warn({ text }, 'bpftrace'),
    });
    const sink = this.collector.parseSink;
    // The main program's per-kind counts go to the loss accounting; its events go straight to the collector.
    const mainSink: ParseSink = { ...sink, sent: (counts) => this.lossCounted(counts) };
    const bpftrace = caps.bpftrace!.path;
    this.faultPolicy = new RestartPolicy(this.opts.restartPolicy);
    this.faults = deps.createFaultWatcher({
      sink,
      bpftrace,
      onStderr: (line) => this.log.debug({ line }, 'bpftrace (faults)'),
      onDied: (cause) => this.faultsDied(cause),
    });
    const scripts = selection.scripts;
    this.runner = new Supervisor({
      process: 'main',
      policy: this.opts.restartPolicy,
      create: (onExit) => {
        const { watchSeedScript } = runnerProgram;
        const seed = this.collector?.watchSeed?.(this.pinningPids);
        this.loss.restart(); // a new program counts from zero
        return deps.createRunner({
          scripts: seed && (seed.pids.length || seed.fds.length || seed.backingSpans?.length || seed.forkAdviceSpans?.length) ? [...scripts, watchSeedScript(seed, scripts)] : scripts,
          sink: mainSink,
          countSent: true,
          bpftrace,
          onStderr: (line) => this.log.debug({ line }, 'bpftrace'),
          onExit,
        });
      },
      beforeRestart: () => this.discover(),
      onDown: (cause) => this.captureDown('main', cause),
      onUp: (readyTsNs, ms) => this.captureUp('main', readyTsNs, ms),
      onRetryFailed: (message) => this.log.error({ err: message }, 'restarting bpftrace failed; retrying'),
      onGiveUp: (reason) => this.giveUp('main', reason),
    });
    this.discover();
    this.checkStopping();
    const t0 = Date.now();
    await this.runner.start();
    this.hub?.setCapture(true);
    this.log.info(
      { mode: selection.mode, scripts: selection.scripts.length, leftOut: selection.probes.filter((p) => !p.attached).length, ms: Date.now() - t0, db: store.file },
      'probes attached',
    );
    return this.info;
  }

  private checkStopping(): void {
    if (this.stopping) throw new Error('live session stopped while starting');
  }

  /** Pids holding pins by the last /proc scan (discover/watchPids): the next program prints their zaps, remaps, forks, exits. */
  private pinningPids: number[] = [];

  /** Scan /proc for pins made while nobody watched (start, restarts); best effort. */
  private discover(): void {
    const collector = this.collector;
    if (!this.deps?.discover || !collector?.adoptDiscovery) return;
    try {
      const d = this.deps.discover();
      const created = collector.adoptDiscovery(d);
      this.pinningPids = watchPids(d);
      this.log.info({ rings: d.rings.length, created, pinning: this.pinningPids.length, processes: d.processes, ms: d.ms }, 'discovered pins already in place');
    } catch (err) {
      this.log.warn({ err: (err as Error)?.message ?? String(err) }, 'discovering existing pins failed');
    }
  }

  /** A per-kind count print of the main program: judge the previous one, publish when the loss changed. */
  private lossCounted(counts: Readonly<Record<string, number>>): void {
    if (this.loss.counted(counts)) this.publishLoss();
  }

  private publishLoss(): void {
    const lostByKind = this.loss.byKind();
    this.store?.lostByKind(lostByKind);
    if (this.info) {
      this.info = { ...this.info, lostByKind };
      this.hub?.setSession(this.info);
    }
  }

  private captureDown(process: CaptureProcess, cause: string): void {
    if (process === 'main' && this.loss.settle()) this.publishLoss(); // its output is drained: its last count stands
    if (this.stopping) return;
    this.log.error({ process, cause }, 'bpftrace died while capturing: restarting it');
    if (process === 'main') this.hub?.setCapture(false);
    const g = this.collector?.gapOpened?.(process, cause) ?? null;
    this.openGaps[process] = g;
    const who = process === 'main' ? 'bpftrace' : 'the fault-watching bpftrace';
    this.hub?.setStatus({ level: 'warning', message: `${who} exited (${cause}); restarting it — events in the gap are not seen, pins are re-checked against pagemap after it` });
  }

  private captureUp(process: CaptureProcess, readyTsNs: number | null, ms: number): void {
    if (this.stopping) return;
    this.restarts[process]++;
    this.restartMs[process] = ms;
    const g = this.openGaps[process];
    this.openGaps[process] = null;
    if (g) this.collector?.gapClosed?.(g, readyTsNs ?? undefined);
    if (process === 'main') this.hub?.setCapture(true);
    this.log.info({ process, ms }, 'bpftrace restarted: capturing again');
    this.hub?.setStatus({ level: 'ok', message: `capturing again after a ${ms} ms gap (${process === 'main' ? 'bpftrace' : 'fault watcher'} restarted); recording to ${this.opts.db}` });
  }

  private giveUp(process: CaptureProcess, reason: string): void {
    if (this.stopping) return;
    const g = this.openGaps[process];
    if (g) {
      g.cause = `${g.cause}; ${reason}`;
      this.collector?.gapUpdated?.(g);
    }
    this.endHow = { reason: 'bpftrace-gave-up', detail: reason };
    this.log.error({ process, reason }, 'bpftrace keeps dying: capture stopped');
    const message = `${reason}: live capture stopped; what was captured is in ${this.opts.db}`;
    this.hub?.setStatus({ level: 'error', message, fix: 'run `pinwatch doctor` and check the log for bpftrace\'s errors, then restart pinwatch' });
    this.opts.onCaptureLost?.(message);
  }

  /** The fault watcher's process died: a gap for faults in armed pinned regions; start another after the backoff. */
  private faultsDied(cause: string): void {
    if (this.stopping) return;
    const t0 = Date.now();
    this.captureDown('faults', cause);
    const attempt = (why: string): void => {
      const delay = this.faultPolicy!.failed();
      if (delay === null) return this.giveUp('faults', `gave up restarting bpftrace (faults) after ${this.faultPolicy!.describe()}; last: ${why}`);
      setTimeout(() => {
        const faults = this.faults;
        if (this.stopping || !faults?.revive) return;
        faults.revive().then(
          () => this.captureUp('faults', faults.readyTsNs ?? null, Date.now() - t0),
          (err: Error) => attempt((err?.message ?? String(err)).split('\n')[0]),
        );
      }, delay).unref();
    };
    attempt(cause);
  }

  /**
   * Drain bpftrace, last verification pass, flush and close the store. Idempotent; waits for a pending start().
   * `how`: what the session row says about its end (default clean, or bpftrace-gave-up after giving up).
   */
  stop(how?: { reason: SessionEndReason; detail?: string }): Promise<void> {
    if (how && this.endHow.reason !== 'bpftrace-gave-up') this.endHow = how;
    this.stopP ??= (async () => {
      this.stopping = true;
      if (this.startP) await this.startP.catch(() => undefined);
      await this.teardown();
    })().catch((err) => {
      this.stopP = null; // e.g. the database stayed locked: rows are still queued, stop() may be called again
      throw err;
    });
    return this.stopP;
  }

  /** Stop whatever was started, in pipeline order; every step runs, the first failure is rethrown. */
  private async teardown(): Promise<void> {
    this.stopping = true;
    let first: unknown = null;
    const step = async (what: string, fn: () => unknown) => {
      try {
        await fn();
      } catch (err) {
        this.log.error({ err: (err as Error)?.message ?? String(err) }, `${what} failed`);
        first ??= err;
      }
    };
    const { runner, faults, collector, store } = this;
    this.runner = null;
    this.faults = null;
    if (runner) await step('stopping bpftrace', () => runner.stop());
    if (this.loss.settle()) this.publishLoss(); // the END print, judged once everything before it arrived
    if (faults) await step('stopping the fault watcher', () => faults.stop());
    if (collector) {
      await step('final verification', () => collector.verifyNow());
      this.counters();
      await step('closing the collector', () => collector.close());
      this.collector = null;
    }
    if (store && !store.isClosed) {
      await step('ending the session', () => {
        const ended = store.currentSessionId !== null ? store.endSession(undefined, this.endHow) : null;
        if (ended) {
          this.info = ended;
          this.hub?.setSession(ended);
        }
      });
      await step('closing the database', () => store.close());
      if (store.isClosed) this.store = null;
    }
    // Only a session that started recording has a recording to point at; a failed start keeps its own status.
    if (store) this.hub?.setStatus({ level: 'warning', message: `live capture stopped; the recording is in ${this.opts.db}` });
    if (first) throw first;
  }
}
