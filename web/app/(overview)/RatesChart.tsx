'use client';
// Event rates per kind over time (recharts stacked areas): the busiest kinds by name, the rest as "other".
import { Area, AreaChart, CartesianGrid, Legend, ResponsiveContainer, Tooltip, XAxis, YAxis } from 'recharts';
import type { EventRates } from '../../../schema/protocol.ts';
import { wallTime } from '../../components/format.ts';
import { kindColor } from '../../components/palette.ts';

const TOP_KINDS = 7;

export function RatesChart({ rates }: { rates: EventRates[] }) {
  const totals = new Map<string, number>();
  for (const r of rates) for (const [k, n] of Object.entries(r.counts)) totals.set(k, (totals.get(k) ?? 0) + (n ?? 0));
  if (totals.size === 0) return <div className="empty">{rates.length ? `no events in the last ${rates.length} s` : 'no event rates yet'}</div>;
  const kinds = [...totals.entries()].sort((a, b) => b[1] - a[1]).map(([k]) => k);
  const shown = kinds.slice(0, TOP_KINDS);
  const rest = kinds.slice(TOP_KINDS);
  const data = rates.map((r) => {
    const row: Record<string, number> = { t: r.wallMs };
    for (const k of shown) row[k] = r.counts[k as keyof typeof r.counts] ?? 0;
    if (rest.length) row.other = rest.reduce((n, k) => n + (r.counts[k as keyof typeof r.counts] ?? 0), 0);
    return row;
  });
  const series = rest.length ? [...shown, 'other'] : shown;
  return (
    <div style={{ width: '100%', height: 220 }} data-testid="rates-chart">
      <ResponsiveContainer>
        <AreaChart data={data} margin={{ top: 4, right: 12, left: 0, bottom: 0 }}>
          <CartesianGrid stroke="#232a34" vertical={false} />
          <XAxis dataKey="t" type="number" domain={['dataMin', 'dataMax']} tickFormatter={(t: number) => wallTime(t).slice(0, 8)} stroke="#5d6775" fontSize={10} />
          <YAxis stroke="#5d6775" fontSize={10} width={44} allowDecimals={false} />
          <Tooltip
            contentStyle={{ background: '#232a34', border: '1px solid #2c3440', fontSize: 11, fontFamily: 'monospace' }}
            labelFormatter={(t) => wallTime(Number(t))}
            formatter={(v, name) => [`${Number(v).toFixed(Number(v) % 1 ? 1 : 0)}/s`, String(name)]}
          />
          <Legend wrapperStyle={{ fontSize: 11, fontFamily: 'monospace' }} />
          {series.map((k) => (
            <Area key={k} type="stepAfter" dataKey={k} stackId="1" stroke={kindColor(k)} fill={kindColor(k)} fillOpacity={0.35} isAnimationActive={false} />
          ))}
        </AreaChart>
      </ResponsiveContainer>
    </div>
  );
}
