// A live capture, wired end to end: capabilities → script selection → SQLite store → Collector (model, rules,
// verification) → bpftrace runner and fault watcher, with the store and the publish hub as the collector's sinks.
// `pinwatch record` and `pinwatch serve` both run one. start() resolves once every probe is attached; stop()
// drains bpftrace, runs a last verification pass and flushes every row before it resolves.
import { hostname } from 'node:os';
import pino from 'pino';
import type { SessionInfo } from '../schema/session.ts';
import type { Capabilities, SelectMode, Selection } from './capabilities/index.ts';
import type { CollectorConfig, CollectorSink, FaultRegion, ParseSink, ScriptSpec } from './contracts.ts';
import type { Collector, CollectorOptions } from './pipeline.ts';
import type { Hub } from './publish/hub.ts';
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
}
export interface CollectorLike {
  readonly parseSink: ParseSink;
  readonly counters: { events: number; anomalies: number; lostEvents: number; malformed: number };
  verifyNow(): void;
  close(): void;
}

/** Seams for tests (fakes of the host and of bpftrace); production uses the real modules. */
export interface LiveSessionDeps {
  probeCapabilities(): Promise<Capabilities>;
  selectScripts(caps: Capabilities, mode: SelectMode): Selection;
  createCollector(opts: CollectorOptions): CollectorLike;
  createRunner(opts: {
    scripts: ScriptSpec[];
    sink: ParseSink;
    bpftrace?: string;
    onStderr: (line: string) => void;
    onExit: (code: number | null, signal: string | null) => void;
  }): RunnerLike;
  createFaultWatcher(opts: { sink: ParseSink; bpftrace?: string; onStderr: (line: string) => void }): FaultWatcherLike;
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
  /** bpftrace exited on its own while capturing (the session keeps what it had; call stop()). */
  onCaptureLost?: (message: string) => void;
  deps?: Partial<LiveSessionDeps>;
}

export interface LiveSessionCounters {
  events: number;
  anomalies: number;
  lostEvents: number;
  malformed: number;
}

async function realDeps(): Promise<LiveSessionDeps> {
  const [caps, pipeline, runner] = await Promise.all([
    import('./capabilities/index.ts'),
    import('./pipeline.ts'),
    import('./runner/index.ts'),
  ]);
  return {
    probeCapabilities: () => caps.probeCapabilities(),
    selectScripts: (c, m) => caps.selectScripts(c, m),
    createCollector: (o) => new pipeline.Collector(o),
    createRunner: (o) => new runner.BpftraceRunner(o),
    createFaultWatcher: (o) => new runner.FaultWatcher(o),
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
  private runner: RunnerLike | null = null;
  private faults: FaultWatcherLike | null = null;
  private info: SessionInfo | null = null;
  private selection: Selection | null = null;
  private startP: Promise<SessionInfo> | null = null;
  private stopP: Promise<void> | null = null;
  private stopping = false;
  private lastCounters: LiveSessionCounters = { events: 0, anomalies: 0, lostEvents: 0, malformed: 0 };

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
    let sinkErrorReported = false;
    this.collector = deps.createCollector({
      sinks,
      config: { submissionsTraced: selection.scripts.some((s) => s.name === 'tracepoint/uring_enter'), ...this.opts.config },
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
    const bpftrace = caps.bpftrace!.path;
    this.faults = deps.createFaultWatcher({ sink, bpftrace, onStderr: (line) => this.log.debug({ line }, 'bpftrace (faults)') });
    this.runner = deps.createRunner({
      scripts: selection.scripts,
      sink,
      bpftrace,
      onStderr: (line) => this.log.debug({ line }, 'bpftrace'),
      onExit: (code, signal) => this.runnerExited(code, signal),
    });
    this.checkStopping();
    const t0 = Date.now();
    await this.runner.start();
    this.log.info(
      { mode: selection.mode, scripts: selection.scripts.length, leftOut: selection.probes.filter((p) => !p.attached).length, ms: Date.now() - t0, db: store.file },
      'probes attached',
    );
    return this.info;
  }

  private checkStopping(): void {
    if (this.stopping) throw new Error('live session stopped while starting');
  }

  private runnerExited(code: number | null, signal: string | null): void {
    if (this.stopping) return;
    const how = signal ?? `code ${code}`;
    this.log.error({ code, signal }, 'bpftrace exited while capturing');
    const message = `bpftrace exited (${how}): live capture stopped; what was captured is in ${this.opts.db}`;
    this.hub?.setStatus({ level: 'error', message, fix: 'run `pinwatch doctor`, then restart pinwatch' });
    this.opts.onCaptureLost?.(message);
  }

  /** Drain bpftrace, last verification pass, flush and close the store. Idempotent; waits for a pending start(). */
  stop(): Promise<void> {
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
    if (faults) await step('stopping the fault watcher', () => faults.stop());
    if (collector) {
      await step('final verification', () => collector.verifyNow());
      this.counters();
      await step('closing the collector', () => collector.close());
      this.collector = null;
    }
    if (store && !store.isClosed) {
      await step('ending the session', () => {
        const ended = store.currentSessionId !== null ? store.endSession() : null;
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
