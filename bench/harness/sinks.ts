// The collector's real sinks for the in-process benchmarks: the SQLite store (collector/store), opened on a
// temp file. Kept in one place so the harness follows the store's API from a single spot.
import { existsSync } from 'node:fs';
import { release } from 'node:os';
import { fileURLToPath } from 'node:url';
import type { CollectorSink } from '../../collector/contracts.ts';

const STORE_MODULE = fileURLToPath(new URL('../../collector/store/index.ts', import.meta.url));

export function storeLanded(): boolean {
  return existsSync(STORE_MODULE);
}

export interface StoreSink {
  sink: CollectorSink;
  name: string;
  /** Commit whatever the store batches (so a timed run includes its writes). */
  flush?(): void;
  /** Rows the store has written (events, anomalies, pagemap reads, pins, pin pages). */
  rowsWritten?(): number;
  close(): void;
}

export async function openStoreSink(path: string): Promise<StoreSink> {
  if (!storeLanded()) throw new Error('collector/store has not landed');
  const { Store } = (await import(STORE_MODULE)) as typeof import('../../collector/store/index.ts');
  const store = Store.open(path); // the store's defaults, as `pinwatch record` opens it
  store.startSession({ host: 'bench', kernel: release(), bpftraceVersion: 'replay', mode: 'replay', probes: [] });
  return {
    sink: store,
    name: 'SQLite (collector/store, default batching)',
    flush: () => store.flush(),
    rowsWritten: () => store.stats().rowsWritten,
    close: () => store.close(),
  };
}
