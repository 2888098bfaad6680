// Flag validation for the CLI (zod): commander parses the words, these schemas decide whether the values make
// sense. A bad value becomes a UsageError — one line naming the flag and what it needs — and exit code 2.
import { existsSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { z } from 'zod';

export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;

export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

const MODES = ['auto', 'tracepoint', 'kprobe'] as const;
export type CliMode = (typeof MODES)[number];
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

const positiveSeconds = z
  .string()
  .trim()
  .regex(/^[+-]?(\d+(\.\d*)?|\.\d+)$/, { error: 'must be a number of seconds' })
  .transform(Number)
  .pipe(z.number().gt(0, { error: 'must be greater than 0' }).max(366 * 86_400, { error: 'must be at most a year' }));

const port = z
  .string()
  .trim()
  .regex(/^\d+$/, { error: 'must be an integer from 0 to 65535' })
  .transform(Number)
  .pipe(z.number().int().min(0).max(65535, { error: 'must be an integer from 0 to 65535' }));

const mode = z.enum(MODES, { error: `must be one of ${MODES.join(', ')}` });

/** A database path to write: its directory must exist, and it must not be a directory. */
const writableDbPath = z
  .string()
  .min(1, { error: 'needs a file name' })
  .refine((p) => existsSync(dirname(resolve(p))), { error: (i) => `directory ${dirname(resolve(String(i.input)))} does not exist` })
  .refine((p) => !existsSync(p) || statSync(p).isFile(), { error: 'is not a regular file' });

const existingFile = z
  .string()
  .min(1, { error: 'needs a file name' })
  .refine((p) => existsSync(p), { error: (i) => `file ${String(i.input)} does not exist` })
  .refine((p) => !existsSync(p) || statSync(p).isFile(), { error: 'is not a regular file' });

const webhook = z.url({ protocol: /^https?$/, error: 'must be an http:// or https:// URL' });

/** --verify-cpu-share (record and serve): the background pagemap sweep's share of one core. */
const verifyCpuShare = z
  .string()
  .trim()
  .regex(/^(\d+(\.\d*)?|\.\d+)$/, { error: 'must be a share of one core, like 0.05' })
  .transform(Number)
  .pipe(z.number().gt(0, { error: 'must be greater than 0' }).max(1, { error: 'must be at most 1 (one core)' }));

export const RecordArgs = z.object({
  db: writableDbPath,
  duration: positiveSeconds.optional(),
  mode: mode.default('auto'),
  verifyCpuShare: verifyCpuShare.optional(),
});
export type RecordArgs = z.output<typeof RecordArgs>;

export const ServeArgs = z
  .object({
    port: port.default(3000),
    host: z.string().trim().min(1, { error: 'needs a host name or address' }).default('127.0.0.1'),
    db: writableDbPath.optional(),
    replay: existingFile.optional(),
    webhook: webhook.optional(),
    prometheus: z.url({ protocol: /^https?$/, error: 'must be the http:// or https:// URL of a Prometheus server' }).optional(),
    hostLabel: z.string().trim().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/, { error: 'must be a host name (letters, digits, . _ -)' }).optional(),
    mode: mode.optional(),
    verifyCpuShare: verifyCpuShare.optional(),
    dev: z.boolean().default(false),
    allowScenarios: z.boolean().default(false),
    allowedHost: z.array(z.string().trim().regex(/^[A-Za-z0-9.-]+$|^\[?[0-9a-fA-F:.]+\]?$/, { error: 'must be a host name or address' })).default([]),
    insecure: z.boolean().default(false),
    tlsCert: existingFile.optional(),
    tlsKey: existingFile.optional(),
    tokenFile: z.string().min(1, { error: 'needs a file name' }).optional(),
    user: z.string().regex(/^[a-z_][a-z0-9_-]{0,31}$/, { error: 'must be a user name' }).optional(),
  })
  .refine((a) => !(a.db && a.replay), { error: '--db (record live) and --replay (open a recording) cannot be used together', path: ['replay'] })
  .refine((a) => !(a.verifyCpuShare !== undefined && a.replay), { error: '--verify-cpu-share (live capture) and --replay (open a recording) cannot be used together', path: ['replay'] })
  .refine((a) => !a.tlsCert === !a.tlsKey, { error: '--tls-cert and --tls-key go together', path: ['tlsKey'] });
export type ServeArgs = z.output<typeof ServeArgs>;

export const ExportArgs = z.object({
  format: z.enum(['jsonl', 'perfetto'], { error: 'must be jsonl or perfetto' }),
  db: existingFile,
  out: writableDbPath.optional(),
});
export type ExportArgs = z.output<typeof ExportArgs>;

export const DoctorArgs = z.object({ mode: mode.default('auto'), attach: z.boolean().default(false) });
export type DoctorArgs = z.output<typeof DoctorArgs>;

export const LogLevel = z.enum(LOG_LEVELS, { error: `must be one of ${LOG_LEVELS.join(', ')}` });

/** camelCase option key → the flag the user typed. */
function flagOf(key: PropertyKey | undefined): string {
  if (key === undefined) return 'arguments';
  return `--${String(key).replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
}

/** Parse `raw` (commander's option object) with `schema`; a failure becomes a one-line UsageError. */
export function validate<S extends z.ZodType>(command: string, schema: S, raw: Record<string, unknown>): z.output<S> {
  const r = schema.safeParse(raw);
  if (r.success) return r.data;
  const issue = r.error.issues[0];
  const key = issue.path[0];
  const value = key !== undefined ? raw[key as string] : undefined;
  const got = value !== undefined && typeof value !== 'boolean' && !issue.message.includes(String(value)) ? ` (got ${JSON.stringify(value)})` : '';
  const message = issue.message.startsWith('--') ? issue.message : `${flagOf(key)} ${issue.message}${got}`;
  throw new UsageError(`pinwatch ${command}: ${message}`);
}
