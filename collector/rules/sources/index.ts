// The promise of every pin source, by PinSource: each source's plug-in carries it (model/sources/, docs/sources.md).
import type { PinSource } from '../../../schema/events.ts';
import type { SourcePromise } from '../../model/sources/promise.ts';
import { sourceOf } from '../../model/sources/index.ts';

export function promiseOf(source: PinSource): SourcePromise {
  return sourceOf(source).promise;
}

export type { SourcePromise, Verdict } from '../../model/sources/promise.ts';
