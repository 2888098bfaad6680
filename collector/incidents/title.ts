// An incident's title: what the event did, to how many pinned pages of which buffer, what that means for the
// device, and whether pagemap confirmed it. "MAP_FIXED replaced 1 pinned page of io_uring buffer 0 (ring fd 5)
// — device writes are lost: confirmed"
import type { RuleId, Severity } from '../../schema/anomalies.ts';
import type { PinSource } from '../../schema/events.ts';

/** What the grouper needs to know about a pin to name it. */
export interface PinFacts {
  source: PinSource;
  handle: string;
  writable: boolean;
}

/** "io_uring buffer 0 (ring fd 5)", "vfio container fd 7 iova 0x100000", "vmsplice pipe fd 4". */
export function pinSubject(p: PinFacts): string {
  const ring = /^ring fd (\d+) slot (\d+)$/.exec(p.handle);
  if (ring) return `${p.source} buffer ${ring[2]} (ring fd ${ring[1]})`;
  return p.handle.startsWith(p.source) ? p.handle : `${p.source} ${p.handle}`;
}

export function processSubject(comm: string, pid: number): string {
  return `process ${comm || '?'} (pid ${pid})`;
}

/** What the most severe finding means for the device, per rule. */
function consequence(rule: RuleId, writable: boolean, severity: Severity): string {
  // The info-level variants of these rules are the kernel refusing the hazard.
  if (severity === 'info' && (rule === 'collapse-uffd-hole' || rule === 'longterm-pin-file-backed')) return 'the kernel refused it';
  switch (rule) {
    case 'pin-pte-divergence':
    case 'cow-on-pinned-page':
      return writable ? 'device writes are lost' : 'the device reads stale data';
    case 'pinned-range-zapped':
      return 'the device and the process can see different pages';
    case 'unmap-of-pinned-page':
      return 'the page can be replaced under the device';
    case 'pin-leak':
      return 'the pinned memory is leaked';
    case 'fork-with-pins':
      return 'a copy-on-write can split the pin from the parent';
    case 'longterm-pin-file-backed':
      return 'writeback races the device';
    case 'collapse-uffd-hole':
      return 'userfaultfd misses a fault';
    case 'collapse-blocked-by-pin':
      return 'the collapse was refused';
    case 'secondary-mmu-wp':
      return 'a secondary MMU can keep a stale page';
  }
}

export interface TitleParts {
  cause: string | null;
  /** The most severe rule among the incident's anomalies. */
  rule: RuleId;
  severity: Severity;
  /** That rule's own title, used when no triggering event is known. */
  ruleTitle: string;
  pages: number;
  subject: string;
  /** Whether the subject is a pin (page counts make sense) or a process. */
  onPin: boolean;
  writable: boolean;
  confirmed: boolean;
}

export function incidentTitle(t: TitleParts): string {
  const verdict = `${consequence(t.rule, t.writable, t.severity)}: ${t.confirmed ? 'confirmed' : 'inferred'}`;
  // Process-wide findings have no pinned pages to count: the rule says what happened.
  if (!t.onPin) return `${t.ruleTitle} in ${t.subject} — ${verdict}`;
  const pages = `${t.pages} pinned page${t.pages === 1 ? '' : 's'} of ${t.subject}`;
  return `${t.cause ? `${t.cause} ${pages}` : `${t.ruleTitle}: ${pages}`} — ${verdict}`;
}
