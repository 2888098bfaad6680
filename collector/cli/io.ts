// The CLI's outputs and signals, injectable so commands can be driven in-process by tests.
import type pino from 'pino';
import { createLogger } from '../service/log.ts';

export interface CliIo {
  out(line: string): void;
  err(line: string): void;
  /** Call handler on every SIGINT/SIGTERM until the returned function is called. */
  onSignal(handler: (signal: NodeJS.Signals) => void): () => void;
  /** Leave now (second ^C): the store's exit hook still flushes queued rows. */
  exit(code: number): never;
  logLevel: string;
}

export function processIo(logLevel: string): CliIo {
  return {
    out: (line) => process.stdout.write(`${line}\n`),
    err: (line) => process.stderr.write(`${line}\n`),
    onSignal(handler) {
      const fn = (sig: NodeJS.Signals) => handler(sig);
      process.on('SIGINT', fn);
      process.on('SIGTERM', fn);
      return () => {
        process.off('SIGINT', fn);
        process.off('SIGTERM', fn);
      };
    },
    exit: (code) => process.exit(code),
    logLevel,
  };
}

/** pino to stderr, synchronous (log lines are not lost when the process exits right after); JSON or human (service/log.ts). */
export function cliLogger(name: string, level: string): pino.Logger {
  return createLogger(name, level);
}
