// The dashboard's HTTP endpoints next to the Next.js pages: JSON under /api (read from the chosen source's
// SQLite view), the session export, recording upload/open for replay, and Prometheus /metrics.
// Every handler validates its input; unknown paths fall through to Next.
import { createReadStream, createWriteStream, mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { z } from 'zod';
import type { RuleInfo } from '../../schema/anomalies.ts';
import { isLivePin, type PinSummary } from '../../schema/pins.ts';
import { unattributedPinned } from '../../schema/reliability.ts';
import type { SessionInfo } from '../../schema/session.ts';
import { PIN_RUNS_PAGE_MAX } from '../../schema/stored.ts';
import type { AnomalyDetail, FleetData, OverviewData, RecordingFile } from '../shared/wire.ts';
import { BodyError, readJsonBody, type AlertInbox } from './alerts.ts';
import { FleetError, type FleetClient } from './fleet.ts';
import type { DashboardMetrics } from './metrics.ts';
import { RecordingError } from './recording.ts';
import { listScenarioEntries } from './scenarios.ts';
import type { DataSource, SourceRegistry } from './sources.ts';

const MAX_UPLOAD_BYTES = 1024 * 1024 * 1024;
/** Runs a GET /api/pins/:id/runs answers when it names no limit. */
const PIN_RUNS_PAGE_DEFAULT = 200;
/** One upload at a time: a second one while the first streams in is answered 429. */
const MAX_CONCURRENT_UPLOADS = 1;

export interface ApiContext {
  sources: SourceRegistry;
  metrics: DashboardMetrics;
  /** Folders whose *.db files the browser may open by name (bundled recordings, the live db's folder). */
  recordingDirs: string[];
  log: { warn(obj: unknown, msg?: string): void; error(obj: unknown, msg?: string): void };
  /** Alerts Alertmanager delivered (POST /api/alerts). */
  alerts?: AlertInbox;
  /** --prometheus: the Fleet page's data source (GET /api/fleet). */
  fleet?: FleetClient;
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' });
  res.end(text);
}

let rulesCache: Promise<RuleInfo[]> | null = null;
/** Rule explanations from collector/rules (ALL_RULES[].info), loaded once. */
export function ruleInfos(): Promise<RuleInfo[]> {
  rulesCache ??= import('../../collector/rules/index.ts').then(
    (m) => m.ALL_RULES.map((r) => r.info),
    (err) => {
      rulesCache = null;
      throw err;
    },
  );
  return rulesCache;
}

const intParam = z
  .string()
  .regex(/^[0-9]{1,15}$/, 'expected a decimal integer')
  .transform((s) => Number(s));
/** Addresses arrive as hex (0x7f…) or decimal. */
const addrParam = z
  .string()
  .regex(/^(0x[0-9a-fA-F]{1,16}|[0-9]{1,17})$/)
  .transform((s) => Number(BigInt(s)))
  .refine((n) => Number.isSafeInteger(n), 'address too large');

/** offset (default 0) and limit (default PIN_RUNS_PAGE_DEFAULT, capped at PIN_RUNS_PAGE_MAX) of GET /api/pins/:id/runs. */
export function runsPaging(url: URL): { offset: number; limit: number } {
  const offset = url.searchParams.has('offset') ? intParam.parse(url.searchParams.get('offset')) : 0;
  const limit = url.searchParams.has('limit') ? intParam.parse(url.searchParams.get('limit')) : PIN_RUNS_PAGE_DEFAULT;
  return { offset, limit: Math.min(Math.max(limit, 1), PIN_RUNS_PAGE_MAX) };
}

function sourceOf(ctx: ApiContext, url: URL): DataSource {
  const src = url.searchParams.get('src');
  const source = ctx.sources.get(src);
  if (!source) throw new HttpError(404, `no data source "${src}" on this server`);
  return source;
}

const GAPS_SHOWN = 100;

/** Is `pid` still the process that was seen as `comm`? (/proc/PID/comm is world-readable; a reused pid has another.) */
function stillRunning(pid: number, comm: string): boolean {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trimEnd() === comm;
  } catch {
    return false;
  }
}

/**
 * What the source could not see: its capture gaps, and pinned memory no pin explains. For live capture the
 * discovery rows are of the newest session and processes still running; a recording shows its newest session's
 * rows as they were.
 */
function blindSpots(source: DataSource, sessions: readonly SessionInfo[], livePins: readonly PinSummary[]): Pick<OverviewData, 'gaps' | 'gapCount' | 'unattributed' | 'discovered'> {
  const reader = source.reader();
  if (!reader) return { gaps: [], gapCount: 0, unattributed: [], discovered: 0 };
  const gaps = reader.gaps();
  const latest = sessions.length ? sessions[sessions.length - 1]!.id : undefined;
  const live = source.info().kind === 'live';
  const pages = new Map<number, number>();
  for (const p of livePins) pages.set(p.pid, (pages.get(p.pid) ?? 0) + p.pageCount);
  const rows = latest === undefined ? [] : reader.pinnedMemory(latest).filter((m) => !live || stillRunning(m.pid, m.comm));
  return { gaps: gaps.slice(-GAPS_SHOWN).reverse(), gapCount: gaps.length, unattributed: unattributedPinned(rows, pages), discovered: rows.length };
}

function listRecordings(dirs: string[]): RecordingFile[] {
  const out = new Map<string, RecordingFile>();
  for (const dir of dirs) {
    let names: string[];
    try {
      names = readdirSync(dir);
    } catch {
      continue;
    }
    for (const name of names) {
      if (!name.endsWith('.db') || out.has(name)) continue;
      try {
        const st = statSync(join(dir, name));
        if (st.isFile()) out.set(name, { name, bytes: st.size, mtimeMs: st.mtimeMs });
      } catch {
        /* vanished */
      }
    }
  }
  return [...out.values()].sort((a, b) => b.mtimeMs - a.mtimeMs);
}

function findRecording(dirs: string[], name: string): string | null {
  if (name !== basename(name) || !name.endsWith('.db')) return null;
  for (const dir of dirs) {
    const file = resolve(dir, name);
    try {
      if (statSync(file).isFile()) return file;
    } catch {
      /* not here */
    }
  }
  return null;
}

async function exportDb(source: DataSource, res: ServerResponse): Promise<void> {
  const reader = source.reader();
  if (!reader) throw new HttpError(409, 'no recording yet: live capture has not created its database');
  const dir = mkdtempSync(join(tmpdir(), 'pinwatch-export-'));
  const file = join(dir, 'export.db');
  try {
    await reader.backupTo(file);
    const size = statSync(file).size;
    const name = source.info().kind === 'live' ? `pinwatch-${source.session()?.host ?? 'host'}-${new Date().toISOString().replace(/[:.]/g, '-')}.db` : source.info().name;
    res.writeHead(200, {
      'content-type': 'application/vnd.sqlite3',
      'content-length': String(size),
      'content-disposition': `attachment; filename="${name.replace(/[^A-Za-z0-9._-]/g, '_')}"`,
      'cache-control': 'no-store',
    });
    await pipeline(createReadStream(file), res);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function receiveUpload(ctx: ApiContext, req: IncomingMessage, uploadDir: () => string): Promise<DataSource> {
  const declared = Number(req.headers['content-length'] ?? NaN);
  if (Number.isFinite(declared) && declared > MAX_UPLOAD_BYTES) throw new HttpError(413, 'recording larger than 1 GiB');
  const rawName = String(req.headers['x-file-name'] ?? 'upload.db');
  const name = basename(rawName).replace(/[^A-Za-z0-9._-]/g, '_') || 'upload.db';
  const file = join(uploadDir(), `${Date.now()}-${name}`);
  let received = 0;
  req.on('data', (chunk: Buffer) => {
    received += chunk.length;
    if (received > MAX_UPLOAD_BYTES) req.destroy(new HttpError(413, 'recording larger than 1 GiB'));
  });
  await pipeline(req, createWriteStream(file));
  try {
    // Owned: the file is deleted when the source is closed or pushed out (the registry keeps a few), so
    // uploads never pile up on disk.
    return await ctx.sources.openReplay(file, name, { owned: true });
  } catch (err) {
    rmSync(file, { force: true });
    if (err instanceof RecordingError) throw new HttpError(400, err.message);
    throw err;
  }
}

/** Returns a request handler: true when it answered, false to let Next render the page. */
export function createApi(ctx: ApiContext): { handle(req: IncomingMessage, res: ServerResponse): Promise<boolean>; close(): void } {
  let uploads: string | null = null;
  let uploading = 0;
  const uploadDir = () => (uploads ??= mkdtempSync(join(tmpdir(), 'pinwatch-uploads-')));

  async function route(req: IncomingMessage, res: ServerResponse, url: URL): Promise<boolean> {
    const path = url.pathname;
    const method = req.method ?? 'GET';

    if (path === '/metrics' && method === 'GET') {
      const m = await ctx.metrics.text();
      res.writeHead(200, { 'content-type': m.contentType });
      res.end(m.body);
      return true;
    }
    if (!path.startsWith('/api/')) return false;

    if (path === '/api/health') {
      sendJson(res, 200, { ok: true });
      return true;
    }
    if (path === '/api/sources' && method === 'GET') {
      sendJson(res, 200, ctx.sources.list());
      return true;
    }
    if (path === '/api/recordings' && method === 'GET') {
      sendJson(res, 200, listRecordings(ctx.recordingDirs));
      return true;
    }
    if (path === '/api/recordings/open' && method === 'POST') {
      const name = z.string().min(1).max(255).parse(url.searchParams.get('name'));
      const file = findRecording(ctx.recordingDirs, name);
      if (!file) throw new HttpError(404, `no recording named ${name}`);
      try {
        const s = await ctx.sources.openReplay(file, name);
        sendJson(res, 200, s.info());
      } catch (err) {
        if (err instanceof RecordingError) throw new HttpError(400, err.message);
        throw err;
      }
      return true;
    }
    if (path === '/api/alerts' && method === 'POST' && ctx.alerts) {
      const n = ctx.alerts.receive(await readJsonBody(req, 1024 * 1024));
      sendJson(res, 200, { received: n });
      return true;
    }
    if (path === '/api/recordings/upload' && method === 'PUT') {
      if (uploading >= MAX_CONCURRENT_UPLOADS) throw new HttpError(429, 'another recording is being uploaded; try again when it is done');
      uploading++;
      try {
        const s = await receiveUpload(ctx, req, uploadDir);
        sendJson(res, 200, s.info());
      } finally {
        uploading--;
      }
      return true;
    }
    if (method !== 'GET') throw new HttpError(405, `${method} not allowed on ${path}`);

    if (path === '/api/features') {
      sendJson(res, 200, { fleet: ctx.fleet !== undefined, alerts: ctx.alerts?.list().length ?? 0 });
      return true;
    }
    if (path === '/api/alerts') {
      sendJson(res, 200, ctx.alerts?.list() ?? []);
      return true;
    }
    if (path === '/api/fleet') {
      const data: FleetData = { prometheus: ctx.fleet?.prometheus ?? null, queriedMs: Date.now(), hosts: [], alerts: ctx.alerts?.list() ?? [] };
      if (!ctx.fleet) data.error = 'no Prometheus to ask for the hosts (fix: start the dashboard with pinwatch serve --prometheus URL)';
      else {
        try {
          data.hosts = await ctx.fleet.hosts();
        } catch (err) {
          if (!(err instanceof FleetError)) throw err;
          data.error = `${err.message} (fix: ${err.fix})`;
        }
      }
      sendJson(res, 200, data);
      return true;
    }
    if (path === '/api/rules') {
      sendJson(res, 200, await ruleInfos());
      return true;
    }
    if (path === '/api/scenarios') {
      sendJson(res, 200, await listScenarioEntries());
      return true;
    }

    const source = sourceOf(ctx, url);
    if (path === '/api/export') {
      await exportDb(source, res);
      return true;
    }
    const reader = source.reader();

    if (path === '/api/overview') {
      const sessions = reader?.sessions() ?? [];
      const livePins = source.pins().filter(isLivePin);
      const body: OverviewData = {
        source: source.info(),
        sessions,
        eventsByKind: source.eventCounts(),
        anomaliesByRule: reader?.anomalyCounts() ?? [],
        pinsLive: livePins.length,
        lostEvents: source.lostEvents(),
        verifySweep: source.verifySweep(),
        ...blindSpots(source, sessions, livePins),
      };
      sendJson(res, 200, body);
      return true;
    }

    let m = /^\/api\/anomalies\/(\d+)$/.exec(path);
    if (m) {
      const seq = intParam.parse(m[1]);
      const anomaly = source.anomaly(seq);
      if (!anomaly) throw new HttpError(404, `no anomaly ${seq}`);
      const rules = await ruleInfos().catch((err: Error) => {
        ctx.log.warn({ err: err.message }, 'rule catalog unavailable');
        return [] as RuleInfo[];
      });
      const seqs = anomaly.evidence.flatMap((e) => (e.type === 'event' ? [e.seq] : []));
      const body: AnomalyDetail = {
        anomaly,
        rule: rules.find((r) => r.id === anomaly.rule) ?? null,
        events: reader?.storedEvents(seqs) ?? [],
        pin: anomaly.pinId !== null ? (reader?.pin(anomaly.pinId) ?? source.pins().find((p) => p.id === anomaly.pinId) ?? null) : null,
      };
      sendJson(res, 200, body);
      return true;
    }

    m = /^\/api\/pins\/(\d+)\/runs$/.exec(path);
    if (m) {
      const id = intParam.parse(m[1]);
      if (!reader) throw new HttpError(409, 'no recording yet');
      const { offset, limit } = runsPaging(url);
      const body = reader.pinRuns(id, offset, limit);
      if (!body) throw new HttpError(404, `no pin ${id}`);
      sendJson(res, 200, body);
      return true;
    }

    if (path === '/api/timeline') {
      if (!reader) throw new HttpError(409, 'no recording yet');
      const pid = intParam.parse(url.searchParams.get('pid'));
      const addr = addrParam.parse(url.searchParams.get('addr'));
      sendJson(res, 200, reader.timeline(pid, addr, source.now().nowNs));
      return true;
    }
    if (path === '/api/timeline/pages') {
      sendJson(res, 200, reader?.pinnedPages() ?? []);
      return true;
    }
    throw new HttpError(404, `no API ${path}`);
  }

  return {
    async handle(req, res) {
      const url = new URL(req.url ?? '/', 'http://localhost');
      try {
        return await route(req, res, url);
      } catch (err) {
        if (res.headersSent) {
          res.destroy(err as Error);
          return true;
        }
        if (err instanceof HttpError || err instanceof BodyError) sendJson(res, err.status, { error: err.message });
        else if (err instanceof z.ZodError) sendJson(res, 400, { error: err.issues.map((i) => `${i.path.join('.') || 'value'}: ${i.message}`).join('; ') });
        else {
          ctx.log.error({ err: (err as Error).stack ?? String(err), path: url.pathname }, 'api error');
          sendJson(res, 500, { error: (err as Error).message });
        }
        return true;
      }
    },
    close() {
      if (uploads) rmSync(uploads, { recursive: true, force: true });
    },
  };
}
