'use client';
// "Page, where are you": one page of one process drawn as a timeline. Lanes: the pin (span, pin/unpin calls),
// what the PTE maps according to pagemap reads (a band coloured by "the pinned pfn" / "another pfn" / "nothing"),
// mapping changes (madvise, munmap, mremap, mmap MAP_FIXED, uffd), faults, THP/KSM/reclaim, process events and
// the anomalies raised. The x axis is event order (equal spacing, Δt on the axis) or linear time.
import { useEffect, useMemo, useRef, useState, type MouseEvent, type RefObject } from 'react';
import type { StoredPagemapRead, TimelineData } from '../../shared/wire.ts';
import { describeEvent, duration, hex, relative } from '../format.ts';
import { useLive } from '../live/LiveProvider.tsx';
import { kindColor, SEVERITY_COLORS } from '../palette.ts';
import { useSrc, withSrc } from '../src.tsx';
import { useJson } from '../useJson.ts';

type LaneId = 'pin' | 'pte' | 'mapping' | 'fault' | 'thp' | 'process' | 'anomaly';

const LANES: { id: LaneId; label: string }[] = [
  { id: 'pin', label: 'pin' },
  { id: 'pte', label: 'PTE → pfn' },
  { id: 'mapping', label: 'mapping' },
  { id: 'fault', label: 'faults' },
  { id: 'thp', label: 'THP/KSM/reclaim' },
  { id: 'process', label: 'process' },
  { id: 'anomaly', label: 'anomalies' },
];

const KIND_LANE: Record<string, LaneId> = {
  pin_iovec: 'pin',
  pin_result: 'pin',
  vfio_dma: 'pin',
  gup: 'pin',
  unpin: 'pin',
  madvise: 'mapping',
  munmap: 'mapping',
  mremap: 'mapping',
  mmap_fixed: 'mapping',
  uffd_register: 'mapping',
  migrate_pte: 'mapping',
  split_pmd: 'mapping',
  mmu_invalidate: 'mapping',
  mmu_invalidate_end: 'mapping',
  copy_page_range: 'process',
  fault: 'fault',
  wp_page: 'fault',
  collapse_file: 'thp',
  scan_file: 'thp',
  scan_pmd: 'thp',
  collapse_isolate: 'thp',
  ksm_merge: 'thp',
  writeback: 'thp',
  unmap: 'thp',
  mkclean: 'thp',
  anon_rmap_move: 'thp',
  fork: 'process',
  exit: 'process',
  close: 'process',
  lost: 'process',
};

const MATCH_WHY: Record<string, string> = {
  range: 'its address range covers the page',
  process: 'process-wide',
  mm: "on the process's mm",
  pfn: 'names a pfn this page had',
  result: 'return of the pinning call',
  lost: 'events lost here',
};

const PTE_COLORS = { pinned: '#4cc38a', moved: '#ff5566', none: '#4a5360', swapped: '#b07cf0', error: '#e5b33d', unknown: '#7a9cc6' };

interface Mark {
  key: string;
  lane: LaneId;
  t: number;
  color: string;
  shape: 'tick' | 'dot' | 'diamond';
  short: string;
  detail: string;
  strong?: boolean;
}

interface Span {
  key: string;
  lane: LaneId;
  t0: number;
  t1: number | null;
  color: string;
  label: string;
  detail: string;
  dashed?: boolean;
}

const LANE_H = 30;
const LEFT = 116;
const RIGHT = 16;
const TOP = 6;
const AXIS_H = 26;

export function PageTimeline({ pid, addr, highlightSeq }: { pid: number; addr: number; highlightSeq?: number }) {
  const src = useSrc();
  const live = useLive();
  const isLive = live.source?.kind === 'live';
  const q = useJson<TimelineData>(withSrc('/api/timeline', src, { pid, addr: hex(addr) }), isLive ? 2000 : 0);
  const [scale, setScale] = useState<'order' | 'time'>('order');
  const [width, setWidth] = useState(1000);
  const [hover, setHover] = useState<{ x: number; y: number; text: string } | null>(null);
  const box = useRef<HTMLDivElement>(null);

  useEffect(() => {
    const el = box.current;
    if (!el) return;
    const ro = new ResizeObserver(() => setWidth(Math.max(480, el.clientWidth)));
    ro.observe(el);
    setWidth(Math.max(480, el.clientWidth));
    return () => ro.disconnect();
  }, []);

  const model = useMemo(() => (q.data ? buildModel(q.data, highlightSeq) : null), [q.data, highlightSeq]);

  return (
    <div className="timeline-wrap" ref={box} data-testid="page-timeline" data-events={q.data?.events.length ?? 0} data-reads={q.data?.reads.length ?? 0}>
      {q.error && !q.data ? (
        <div className="empty">{q.error}</div>
      ) : !model || !q.data ? (
        <div className="empty">loading timeline…</div>
      ) : model.times.length === 0 ? (
        <div className="empty">
          nothing recorded for page {hex(q.data.addr)} of pid {q.data.pid}
        </div>
      ) : (
        <TimelineSvg d={q.data} model={model} width={width} scale={scale} setScale={setScale} hover={hover} setHover={setHover} box={box} />
      )}
    </div>
  );
}

function TimelineSvg({
  d,
  model,
  width,
  scale,
  setScale,
  hover,
  setHover,
  box,
}: {
  d: TimelineData;
  model: Model;
  width: number;
  scale: 'order' | 'time';
  setScale: (s: 'order' | 'time') => void;
  hover: { x: number; y: number; text: string } | null;
  setHover: (h: { x: number; y: number; text: string } | null) => void;
  box: RefObject<HTMLDivElement | null>;
}) {

  const plotW = width - LEFT - RIGHT;
  const times = model.times;
  const tMin = times[0]!;
  const tMax = times[times.length - 1]!;
  const x = (t: number): number => {
    if (scale === 'time') return LEFT + (tMax === tMin ? plotW / 2 : ((t - tMin) / (tMax - tMin)) * plotW);
    // Event order: equal slots; times between slots (span ends) interpolate.
    if (times.length === 1) return LEFT + plotW / 2;
    let lo = 0;
    let hi = times.length - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (times[mid]! < t) lo = mid + 1;
      else hi = mid;
    }
    const slot = plotW / (times.length - 1);
    if (times[lo] === t || lo === 0) return LEFT + lo * slot;
    const a = times[lo - 1]!;
    const b = times[lo]!;
    return LEFT + (lo - 1 + (t - a) / (b - a)) * slot;
  };
  const laneY = (lane: LaneId) => TOP + LANES.findIndex((l) => l.id === lane) * LANE_H;
  const height = TOP + LANES.length * LANE_H + AXIS_H;
  const rightEdge = LEFT + plotW;

  // Axis labels: every slot that keeps ≥ 74 px from the previous label.
  const ticks: { x: number; label: string }[] = [];
  let lastX = -1e9;
  for (const t of scale === 'order' ? times : niceTicks(tMin, tMax, Math.max(2, Math.floor(plotW / 110)))) {
    const px = x(t);
    if (px - lastX < 74) continue;
    ticks.push({ x: px, label: relative(t, model.t0) });
    lastX = px;
  }

  const show = (e: MouseEvent, text: string) => {
    const r = box.current!.getBoundingClientRect();
    setHover({ x: e.clientX - r.left + 12, y: e.clientY - r.top + 12, text });
  };

  return (
    <>
      <div style={{ display: 'flex', gap: 12, alignItems: 'center', marginBottom: 6, flexWrap: 'wrap' }}>
        <span className="mono">
          {d.comm} [{d.pid}] page {hex(d.addr)}
        </span>
        {model.pinnedPfn !== null ? (
          <span className="mono muted">
            pinned pfn <span className="pfn-same">{hex(model.pinnedPfn)}</span>
          </span>
        ) : null}
        <span className="muted">
          {d.events.length} events · {model.readCount} pagemap reads · {d.anomalies.length} anomalies · span {duration(tMax - tMin)}
        </span>
        <span style={{ flex: 1 }} />
        <label className="muted" style={{ fontSize: 12 }}>
          x axis{' '}
          <select value={scale} onChange={(e) => setScale(e.target.value as 'order' | 'time')}>
            <option value="order">event order (Δt on axis)</option>
            <option value="time">linear time</option>
          </select>
        </label>
      </div>
      <svg width={width} height={height} onMouseLeave={() => setHover(null)} role="img" aria-label={`timeline of page ${hex(d.addr)} of pid ${d.pid}`}>
        {LANES.map((l, i) => (
          <g key={l.id}>
            <rect x={0} y={TOP + i * LANE_H} width={width} height={LANE_H} fill={i % 2 ? '#11151a' : '#13171d'} />
            <text className="lane-label" x={8} y={TOP + i * LANE_H + LANE_H / 2 + 4}>
              {l.label}
            </text>
          </g>
        ))}
        <line x1={LEFT} x2={LEFT} y1={TOP} y2={height - AXIS_H} stroke="#2c3440" />
        {model.spans.map((s) => {
          const x0 = x(s.t0);
          const x1 = s.t1 === null ? rightEdge : Math.max(x0 + 2, x(s.t1));
          const y = laneY(s.lane);
          const w = x1 - x0;
          return (
            <g key={s.key} onMouseMove={(e) => show(e, s.detail)}>
              <rect x={x0} y={y + 7} width={w} height={LANE_H - 14} rx={2} fill={s.color} fillOpacity={s.dashed ? 0.12 : 0.3} stroke={s.color} strokeDasharray={s.dashed ? '3 3' : undefined} />
              {s.t1 === null ? <path d={`M${x1 - 6},${y + 9} L${x1},${y + LANE_H / 2} L${x1 - 6},${y + LANE_H - 9}`} stroke={s.color} fill="none" /> : null}
            </g>
          );
        })}
        {stackMarks(model.marks, x).map(({ m, dy }) => {
          const cx = x(m.t);
          const cy = laneY(m.lane) + LANE_H / 2 + dy;
          const r = m.strong ? 7 : 5;
          return (
            <g key={m.key} onMouseMove={(e) => show(e, m.detail)} style={{ cursor: 'default' }}>
              {m.shape === 'diamond' ? (
                <path d={`M${cx},${cy - r} L${cx + r},${cy} L${cx},${cy + r} L${cx - r},${cy} Z`} fill={m.color} stroke={m.strong ? '#fff' : 'none'} strokeWidth={1.5} />
              ) : m.shape === 'dot' ? (
                <circle cx={cx} cy={cy} r={4} fill={m.color} stroke="#0d1014" strokeWidth={1} />
              ) : (
                <rect x={cx - 1.5} y={cy - 9} width={3} height={18} fill={m.color} />
              )}
              <rect x={cx - 8} y={cy - 12} width={16} height={24} fill="transparent" />
            </g>
          );
        })}
        {/* Span labels last, over the marks, with a halo so ticks do not cut through them. */}
        {model.spans.map((s) => {
          const x0 = x(s.t0);
          const x1 = s.t1 === null ? rightEdge : Math.max(x0 + 2, x(s.t1));
          const w = x1 - x0;
          if (w <= 56) return null;
          const room = Math.floor((w - 10) / 6.2);
          return (
            <text key={`l-${s.key}`} className="mark-label halo" x={x0 + 5} y={laneY(s.lane) + LANE_H / 2 + 4} pointerEvents="none">
              {s.label.length > room ? `${s.label.slice(0, Math.max(3, room - 1))}…` : s.label}
            </text>
          );
        })}
        <g className="axis">
          <line x1={LEFT} x2={rightEdge} y1={height - AXIS_H + 2} y2={height - AXIS_H + 2} stroke="#2c3440" />
          {ticks.map((t, i) => (
            <g key={i}>
              <line x1={t.x} x2={t.x} y1={height - AXIS_H + 2} y2={height - AXIS_H + 6} stroke="#5d6775" />
              <text x={t.x} y={height - 8} textAnchor={i === 0 ? 'start' : 'middle'}>
                {t.label}
              </text>
            </g>
          ))}
        </g>
      </svg>
      {hover ? (
        <div className="tooltip" style={{ left: Math.min(hover.x, width - 360), top: hover.y }}>
          {hover.text}
        </div>
      ) : null}
      <div className="legend" style={{ marginTop: 6 }}>
        <span>
          <i style={{ background: PTE_COLORS.pinned }} />
          PTE maps the pinned pfn
        </span>
        <span>
          <i style={{ background: PTE_COLORS.moved }} />
          PTE maps another pfn (divergence)
        </span>
        <span>
          <i style={{ background: PTE_COLORS.none }} />
          not present
        </span>
        <span>
          <i style={{ background: PTE_COLORS.swapped }} />
          swapped
        </span>
        <span className="faint">t = 0 at the first pin of this page; hover a mark for details</span>
      </div>
      <details style={{ marginTop: 6 }}>
        <summary className="muted" style={{ cursor: 'pointer', fontSize: 12 }}>
          same data as a table
        </summary>
        <table className="t" style={{ marginTop: 4 }}>
          <tbody>
            {model.rows.map((r) => (
              <tr key={r.key}>
                <td className="num mono muted">{relative(r.t, model.t0)}</td>
                <td className="mono">{r.lane}</td>
                <td className="mono">{r.detail.split('\n')[0]}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </details>
    </>
  );
}

/** Marks of one lane that land on (nearly) the same x are fanned out vertically so none hides another. */
function stackMarks(marks: Mark[], x: (t: number) => number): { m: Mark; dy: number }[] {
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

function niceTicks(lo: number, hi: number, n: number): number[] {
  if (hi <= lo) return [lo];
  const out: number[] = [];
  for (let i = 0; i <= n; i++) out.push(lo + ((hi - lo) * i) / n);
  return out;
}

interface Model {
  t0: number;
  /** pagemap reads drawn (stored ones plus those only cited as evidence or kept as the pin's snapshot). */
  readCount: number;
  times: number[];
  marks: Mark[];
  spans: Span[];
  pinnedPfn: number | null;
  rows: { key: string; t: number; lane: string; detail: string }[];
}

function buildModel(d: TimelineData, highlightSeq?: number): Model {
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
    const lane = KIND_LANE[e.kind] ?? 'process';
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
