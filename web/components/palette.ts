// Stable colours per event kind and per severity, so a kind has the same colour in every chart and timeline.
// A kind's colour is part of its row in schema/event-kinds.ts.
import type { Severity } from '../../schema/anomalies.ts';
import { isEventKind, kindRow } from '../../schema/event-kinds.ts';

export function kindColor(kind: string): string {
  return isEventKind(kind) ? kindRow(kind).color : '#8b96a5';
}

export const SEVERITY_COLORS: Record<Severity, string> = {
  critical: '#ff5566',
  high: '#f08a3c',
  warning: '#e5b33d',
  info: '#7a9cc6',
};
