// collector/store: the SQLite store. Store (a CollectorSink that writes batched transactions, with the read
// queries on its connection) for the collector; StoreQueries (the read side, read-only beside a live writer)
// for everything that only reads.
export { Store } from './store.ts';
export type { StoreOptions } from './store.ts';
export { StoreQueries } from './queries.ts';
export type { AnomalyFilter, EventFilter } from './queries.ts';
export type { NextSeqs, StoreStats } from './writer.ts';
export type { TimelineEntry, TimelineMatch } from './timeline.ts';
export type { IncidentFilter } from './incidents.ts';
export { StoreError, isStoreError, toStoreError } from './errors.ts';
export type { StoreErrorCode } from './errors.ts';
export { eventAddr, eventLen, payloadJson } from './rows.ts';
