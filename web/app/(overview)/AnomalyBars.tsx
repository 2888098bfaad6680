'use client';
// Anomalies per rule, stacked by severity (recharts horizontal bars).
import { Bar, BarChart, ResponsiveContainer, Tooltip, XAxis, YAxis } from 'recharts';
import { SEVERITIES, type Severity } from '../../../schema/anomalies.ts';
import { SEVERITY_COLORS } from '../../components/palette.ts';

export function AnomalyBars({ rows }: { rows: ({ rule: string } & Record<Severity, number>)[] }) {
  return (
    <div style={{ width: '100%', height: 28 + rows.length * 24 }}>
      <ResponsiveContainer>
        <BarChart data={rows} layout="vertical" margin={{ top: 6, right: 16, left: 8, bottom: 0 }}>
          <XAxis type="number" allowDecimals={false} stroke="#5d6775" fontSize={10} />
          <YAxis type="category" dataKey="rule" width={170} stroke="#5d6775" fontSize={10} tick={{ fontFamily: 'monospace' }} />
          <Tooltip contentStyle={{ background: '#232a34', border: '1px solid #2c3440', fontSize: 11 }} cursor={{ fill: '#1a1f27' }} />
          {SEVERITIES.map((s) => (
            <Bar key={s} dataKey={s} stackId="s" fill={SEVERITY_COLORS[s]} isAnimationActive={false} />
          ))}
        </BarChart>
      </ResponsiveContainer>
    </div>
  );
}
