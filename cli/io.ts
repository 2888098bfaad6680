// The CLI's outputs and signals, injectable so commands can be driven in-process by tests.
import type pino from 'pino';
import { createLogger } from '../collector/service/log.ts';

export interface CliIo {
  out(line: string): void;
  err(line: string): void;
  /** Call handler on every SIGINT/SIGTERM until the returned function is called. */
  onSignal(handler: (signal: NodeJS.Signals) => void): () => void;
  /** Leave now (second ^C): the store's exit hook still flushes queued rows. */
  exit(code: number): never;
  logLevel: string;
}

const PARENT_POLL_MS = 500;

export function processIo(logLevel: string): CliIo {
  return {
    out: (line) => process.stdout.write(`${line}\n`),
    err: (line) => process.stderr.write(`${line}\n`),
    onSignal(handler) {
      const fn = (sig: NodeJS.Signals) => handler(sig);
      process.on('SIGINT', fn);
      process.on('SIGTERM', fn);
      // Launched through a wrapper that does not pass signals on (npx runs `sh -c pinwatch …`; npm forwards a
      // SIGTERM/SIGINT to that sh only): when the wrapper dies we are re-parented, and stop as if signalled.
      const ppid = process.ppid;
      const watch = setInterval(() => {
        if (process.ppid !== ppid) {
          clearInterval(watch);
          handler('SIGHUP');
        }
      }, PARENT_POLL_MS);
      watch.unref();
      return () => {
        clearInterval(watch);
        process.off('SIGINT', fn);
        process.off('SIGTERM', fn);
      };
    },
    exit: (code) => process.exit(code),
    logLevel,
  };
}

/** pino to stderr, synchronous (log lines are not lost when the process exits right after); JSON or human (collector/service/log.ts). */
export function cliLogger(name: string, level: string): pino.Logger {
  return createLogger(name, level);
}
