// Logs for people and for machines from the same pino calls: one JSON object per line under systemd (stderr is
// the journal's stream, JOURNAL_STREAM names it) or when piped, one readable line on a terminal
// ("08:12:01 WARN  pinwatch-serve: the web process died; capture goes on (code=1 restartInMs=1000)").
// A few lines of formatting here instead of pino-pretty and its dependencies.
import { fstatSync, writeSync } from 'node:fs';
import pino from 'pino';

export type LogFormat = 'json' | 'human';

/** JSON under journald or when stderr is not a terminal; human on a terminal. PINWATCH_LOG_FORMAT overrides. */
export function logFormat(env: Record<string, string | undefined> = process.env, fd = 2, isTTY = process.stderr.isTTY === true): LogFormat {
  if (env.PINWATCH_LOG_FORMAT === 'json' || env.PINWATCH_LOG_FORMAT === 'human') return env.PINWATCH_LOG_FORMAT;
  if (env.JOURNAL_STREAM) {
    try {
      const st = fstatSync(fd);
      if (env.JOURNAL_STREAM === `${st.dev}:${st.ino}`) return 'json';
    } catch {
      /* fd closed: fall through */
    }
  }
  return isTTY ? 'human' : 'json';
}

const LEVELS: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO ', 40: 'WARN ', 50: 'ERROR', 60: 'FATAL' };
const OMIT = new Set(['level', 'time', 'pid', 'hostname', 'name', 'msg']);

/** One pino JSON line as the line a person reads. */
export function humanLine(json: string): string {
  let o: Record<string, unknown>;
  try {
    o = JSON.parse(json) as Record<string, unknown>;
  } catch {
    return json;
  }
  const t = new Date(typeof o.time === 'number' ? o.time : Date.now()).toTimeString().slice(0, 8);
  const extra = Object.entries(o)
    .filter(([k]) => !OMIT.has(k))
    .map(([k, v]) => `${k}=${typeof v === 'string' ? (/\s/.test(v) ? JSON.stringify(v) : v) : JSON.stringify(v)}`)
    .join(' ');
  return `${t} ${LEVELS[o.level as number] ?? String(o.level)} ${String(o.name ?? 'pinwatch')}: ${String(o.msg ?? '')}${extra ? ` (${extra})` : ''}\n`;
}

/** The logger of a pinwatch process, on stderr, synchronous (nothing lost when the process exits right after). */
export function createLogger(name: string, level = process.env.PINWATCH_LOG_LEVEL ?? 'info', format: LogFormat = logFormat()): pino.Logger {
  if (format === 'json') return pino({ name, level }, pino.destination({ dest: 2, sync: true }));
  return pino({ name, level }, { write: (line: string) => void writeSync(2, humanLine(line)) });
}
