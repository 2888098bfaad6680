// collector/publish: the in-process fan-out of the collector's output to live consumers (web, CLI).
export { Hub, summarizePin } from './hub.ts';
export type { HubOptions, HubStatus, HubTotals } from './hub.ts';
