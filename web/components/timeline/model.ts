// The page timeline's model: what to draw in which lane, from the timeline data of one page of one process
// (its events, pins, pagemap reads and anomalies). Events go to their kind's lane (schema/event-kinds.ts).
import { isEventKind, kindRow, type TimelineLane } from '../../../schema/event-kinds.ts';
import type { StoredPagemapRead, TimelineData } from '../../shared/wire.ts';
import { describeEvent, duration, hex } from '../format.ts';
import { kindColor, SEVERITY_COLORS } from '../palette.ts';

/** The event lanes of schema/event-kinds.ts, plus what pagemap showed and the anomalies raised. */
export type LaneId = TimelineLane | 'pte' | 'anomaly';

export const LANES: { id: LaneId; label: string }[] = [
  { id: 'pin', label: 'pin' },
  { id: 'pte', label: 'PTE → pfn' },
  { id: 'mapping', label: 'mapping' },
  { id: 'fault', label: 'faults' },
  { id: 'thp', label: 'THP/KSM/reclaim' },
  { id: 'process', label: 'process' },
  { id: 'anomaly', label: 'anomalies' },
];

const MATCH_WHY: Record<string, string> = {
  range: 'its address range covers the page',
  process: 'process-wide',
  mm: "on the process's mm",
  pfn: 'names a pfn this page had',
  result: 'return of the pinning call',
  lost: 'events lost here',
};

export const PTE_COLORS = { pinned: '#4cc38a', moved: '#ff5566', none: '#4a5360', swapped: '#b07cf0', error: '#e5b33d', unknown: '#7a9cc6' };

export interface Mark {
  key: string;
  lane: LaneId;
  t: number;
  color: string;
  shape: 'tick' | 'dot' | 'diamond';
  short: string;
  detail: string;
  strong?: boolean;
}

export interface Span {
  key: string;
  lane: LaneId;
  t0: number;
  t1: number | null;
  color: string;
  label: string;
  detail: string;
  dashed?: boolean;
}

/** Marks of one lane that land on (nearly) the same x are fanned out vertically so none hides another. */
export function stackMarks(marks: Mark[], x: (t: number) => number): { m: Mark; dy: number }[] {
  const placed = new Map<string, number[]>();
  const OFFSETS = [0, -7, 7, -11, 11];
  return marks.map((m) => {
    const px = x(m.t);
    const key = `${m.lane}`;
    const xs = placed.get(key) ?? [];
    const near = xs.filter((q) => Math.abs(q - px) < 5).length;
    xs.push(px);
    placed.set(key, xs);
    return { m, dy: OFFSETS[near % OFFSETS.length]! };
  });
}

export function niceTicks(lo: number, hi: number, n: number): number[] {
  if (hi <= lo) return [lo];
  const out: number[] = [];
  for (let i = 0; i <= n; i++) out.push(lo + ((hi - lo) * i) / n);
  return out;
}

export interface Model {
  t0: number;
  /** pagemap reads drawn (stored ones plus those only cited as evidence or kept as the pin's snapshot). */
  readCount: number;
  times: number[];
  marks: Mark[];
  spans: Span[];
  pinnedPfn: number | null;
  rows: { key: string; t: number; lane: string; detail: string }[];
}

export function buildModel(d: TimelineData, highlightSeq?: number): Model {
  const marks: Mark[] = [];
  const spans: Span[] = [];
  const pinnedPfn = d.pins.find((p) => p.page?.pinnedPfn != null)?.page?.pinnedPfn ?? d.anomalies.find((a) => a.pfn !== null)?.pfn ?? null;
  const timeSet = new Set<number>();

  for (const p of d.pins) {
    timeSet.add(p.createdNs);
    if (p.releasedNs !== null) timeSet.add(p.releasedNs);
    const pfn = p.page?.pinnedPfn ?? null;
    spans.push({
      key: `pin-${p.id}`,
      lane: 'pin',
      t0: p.createdNs,
      t1: p.releasedNs,
      color: p.state === 'diverged' ? '#ff5566' : p.state === 'zapped' ? '#f08a3c' : p.state === 'released' ? '#5d6775' : '#4cc38a',
      label: `#${p.id} ${p.source} ${p.handle}${pfn !== null ? ` pfn ${hex(pfn)}` : ''}`,
      detail: [
        `pin #${p.id} ${p.source} ${p.handle} (${p.state})`,
        `range ${hex(p.addr)}–${hex(p.addr + p.len)}  ${p.pageCount} pages  ${p.writable ? 'WRITE' : 'RO'}${p.longterm ? '|LONGTERM' : ''}  ${p.backing}`,
        `this page: pinned pfn ${hex(pfn)}${p.page?.snapshotLate ? ' (snapshot taken late)' : ''}, current ${hex(p.page?.currentPfn ?? null)}`,
        p.releasedNs !== null ? `released after ${duration(p.releasedNs - p.createdNs)}` : 'still pinned',
      ].join('\n'),
    });
  }

  for (const e of d.events) {
    timeSet.add(e.tsNs);
    const lane = isEventKind(e.kind) ? kindRow(e.kind).lane : 'process';
    const zap = e.kind === 'madvise' || e.kind === 'munmap' || e.kind === 'mremap' || e.kind === 'mmap_fixed';
    marks.push({
      key: `e${e.seq}`,
      lane,
      t: e.tsNs,
      color: kindColor(e.kind),
      shape: 'tick',
      short: e.kind,
      detail: `${describeEvent(e.kind, e.payload)}\n#${e.seq} ${e.kind}  ${e.comm}[${e.pid}/${e.tid}]${e.match ? `  (on this timeline: ${MATCH_WHY[e.match] ?? e.match})` : ''}`,
      strong: zap,
    });
  }

  // What the PTE mapped over time: the stored pagemap reads, the reads the anomalies cite as evidence (the
  // verifier's pin-time snapshot among them), and, when no read shows the pinned pfn, the pin's own snapshot
  // (pins table) at the pin's creation — by definition the PTE mapped the pinned pfn then.
  const readKey = (r: { tsNs: number; pfn: number | null }) => `${r.tsNs}:${r.pfn}`;
  const readMap = new Map<string, StoredPagemapRead>();
  for (const r of d.reads) readMap.set(readKey(r), r);
  let synthetic = 0;
  for (const a of d.anomalies) {
    for (const ev of a.evidence) {
      if (ev.type !== 'pagemap' || Math.floor(ev.read.addr / 4096) * 4096 !== d.addr) continue;
      const key = readKey(ev.read);
      if (!readMap.has(key)) readMap.set(key, { ...ev.read, id: -++synthetic, reason: `cited by anomaly #${a.seq}: ${ev.note}` });
    }
  }
  if (pinnedPfn !== null && ![...readMap.values()].some((r) => r.pfn === pinnedPfn)) {
    const pin = d.pins.find((p) => p.page?.pinnedPfn === pinnedPfn);
    if (pin) {
      readMap.set(`pin:${pin.id}`, {
        id: -++synthetic,
        tsNs: pin.createdNs,
        pid: d.pid,
        addr: d.addr,
        present: true,
        swapped: false,
        pfn: pinnedPfn,
        reason: `pin-time snapshot of pin #${pin.id}${pin.page?.snapshotLate ? ' (taken late)' : ''}`,
      });
    }
  }
  const reads = [...readMap.values()].sort((a, b) => a.tsNs - b.tsNs);
  const lastKnown = Math.max(
    ...d.events.map((e) => e.tsNs),
    ...d.pins.map((p) => p.releasedNs ?? 0),
    ...d.anomalies.map((a) => a.tsNs),
    0,
  );
  reads.forEach((r, i) => {
    timeSet.add(r.tsNs);
    const state = r.error ? 'error' : r.swapped ? 'swapped' : !r.present ? 'none' : pinnedPfn === null ? 'unknown' : r.pfn === pinnedPfn ? 'pinned' : 'moved';
    const label = state === 'pinned' || state === 'moved' || state === 'unknown' ? hex(r.pfn) : state === 'none' ? 'not present' : state;
    const next = reads[i + 1];
    spans.push({
      key: `pte-${r.id}`,
      lane: 'pte',
      t0: r.tsNs,
      // The last read holds until the next thing known about the page (or, live, until now: open-ended).
      t1: next ? next.tsNs : lastKnown > r.tsNs ? lastKnown : null,
      color: PTE_COLORS[state],
      label,
      dashed: state === 'none',
      detail: `pagemap read (${r.reason}): ${r.error ? `failed: ${r.error}` : r.present ? `present, pfn ${hex(r.pfn)}` : r.swapped ? 'swapped' : 'not present'}${state === 'moved' ? `\n≠ pinned pfn ${hex(pinnedPfn)}: the device and the CPU see different pages` : state === 'pinned' ? '\n= the pinned pfn' : ''}`,
    });
    marks.push({ key: `r${r.id}`, lane: 'pte', t: r.tsNs, color: PTE_COLORS[state], shape: 'dot', short: label, detail: `pagemap read (${r.reason}) → ${label}` });
  });

  for (const a of d.anomalies) {
    timeSet.add(a.tsNs);
    marks.push({
      key: `a${a.seq}`,
      lane: 'anomaly',
      t: a.tsNs,
      color: SEVERITY_COLORS[a.severity],
      shape: 'diamond',
      short: a.rule,
      strong: a.seq === highlightSeq,
      detail: `${a.severity.toUpperCase()} ${a.rule} #${a.seq}${a.confirmed ? ' (confirmed)' : ' (inferred)'}\n${a.summary}${a.pfn !== null ? `\npfn ${hex(a.pfn)} → ${hex(a.newPfn)}` : ''}`,
    });
  }

  const times = [...timeSet].sort((a, b) => a - b);
  const t0 = d.pins.length ? Math.min(...d.pins.map((p) => p.createdNs)) : (times[0] ?? 0);
  const rows = [
    ...marks.filter((m) => m.shape !== 'dot').map((m) => ({ key: m.key, t: m.t, lane: m.lane, detail: m.detail })),
    ...spans.map((s) => ({ key: s.key, t: s.t0, lane: s.lane, detail: s.detail })),
  ].sort((a, b) => a.t - b.t);
  return { t0, times, marks, spans, pinnedPfn, rows, readCount: reads.length };
}
