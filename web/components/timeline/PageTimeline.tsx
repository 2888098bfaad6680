'use client';
// "Page, where are you": one page of one process drawn as a timeline. Lanes: the pin (span, pin/unpin calls),
// what the PTE maps according to pagemap reads (a band coloured by "the pinned pfn" / "another pfn" / "nothing"),
// mapping changes (madvise, munmap, mremap, mmap MAP_FIXED, uffd), faults, THP/KSM/reclaim, process events and
// the anomalies raised. The x axis is event order (equal spacing, Δt on the axis) or linear time.
import { useEffect, useMemo, useRef, useState, type MouseEvent, type RefObject } from 'react';
import type { TimelineData } from '../../shared/wire.ts';
import { duration, hex, relative } from '../format.ts';
import { useLive } from '../live/LiveProvider.tsx';
import { useSrc, withSrc } from '../src.tsx';
import { useJson } from '../useJson.ts';
import { buildModel, LANES, niceTicks, PTE_COLORS, stackMarks, type LaneId, type Model } from './model.ts';

const LANE_H = 30;
const LEFT = 116;
const RIGHT = 16;
const TOP = 6;
const AXIS_H = 26;
const GAP_COLOR = '#e0a030';

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
        <defs>
          <pattern id="gap-hatch" width={6} height={6} patternUnits="userSpaceOnUse" patternTransform="rotate(45)">
            <rect width={6} height={6} fill={GAP_COLOR} fillOpacity={0.08} />
            <line x1={0} y1={0} x2={0} y2={6} stroke={GAP_COLOR} strokeOpacity={0.45} strokeWidth={2} />
          </pattern>
        </defs>
        {d.gaps.map((g) => {
          // Clipped to the drawn window: a gap before the first or after the last event shows at the edge.
          const end = g.endNs ?? Math.max(tMax, d.nowNs);
          if (end < tMin || g.startNs > Math.max(tMax, d.nowNs)) return null;
          const x0 = x(Math.max(g.startNs, tMin));
          const x1 = g.endNs === null || g.endNs > tMax ? rightEdge : x(g.endNs);
          const text = `capture gap (${g.process === 'main' ? 'main bpftrace' : 'fault watcher'}): ${g.cause}\n${g.endNs === null ? 'still open' : `lasted ${duration(g.endNs - g.startNs)}`}; events lost: ${g.eventsLost ?? 'unknown'}\nnothing was traced here; the verifier re-read every live pin after it`;
          return (
            <rect key={`gap-${g.id}`} data-testid="timeline-gap" x={x0} y={TOP} width={Math.max(3, x1 - x0)} height={LANES.length * LANE_H} fill="url(#gap-hatch)" onMouseMove={(e) => show(e, text)} />
          );
        })}
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
        {d.gaps.length ? (
          <span>
            <i style={{ background: GAP_COLOR, opacity: 0.5 }} />
            capture gap (bpftrace down: nothing traced)
          </span>
        ) : null}
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

