// Turning failures into what a user reads: the message and the fix, never a stack trace (unless --log-level debug).
import { StoreError } from '../collector/store/errors.ts';

interface WithFix {
  message: string;
  fix?: unknown;
  reason?: unknown;
}

export function describeFailure(command: string, err: unknown, logLevel: string): string {
  const e = err as WithFix;
  const verbose = logLevel === 'debug' || logLevel === 'trace';
  let text: string;
  if (err instanceof StoreError) text = `pinwatch ${command}: ${err.message}\n  fix: ${err.fix}`;
  else if (e && typeof e === 'object' && typeof e.reason === 'string' && typeof e.fix === 'string') {
    text = `pinwatch ${command}: live capture unavailable: ${e.reason}\n  fix: ${e.fix}`;
  } else if (e && typeof e === 'object' && typeof e.message === 'string') {
    text = `pinwatch ${command}: ${e.message}${typeof e.fix === 'string' ? `\n  fix: ${e.fix}` : ''}`;
  } else text = `pinwatch ${command}: ${String(err)}`;
  if (verbose && err instanceof Error && err.stack) text += `\n${err.stack}`;
  return text;
}
