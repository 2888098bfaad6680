// collector/store: the SQLite store (a CollectorSink that writes batched transactions, plus read queries).
export { Store } from './store.ts';
export type { StoreOptions, AnomalyFilter, EventFilter, NextSeqs, TimelineEntry, TimelineMatch, StoreStats } from './store.ts';
export { StoreError, isStoreError, toStoreError } from './errors.ts';
export type { StoreErrorCode } from './errors.ts';
export { eventAddr, eventLen, payloadJson, pageDiverged } from './rows.ts';
