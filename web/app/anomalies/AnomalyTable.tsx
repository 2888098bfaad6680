'use client';
// One table of anomalies, newest first. Each row carries data-rule, data-pid, data-addr (hex), data-seq and
// data-severity so tests and scripts can find a verdict without parsing text. Rows open the detail view.
import { useRouter } from 'next/navigation';
import { useRef } from 'react';
import type { Anomaly } from '../../../schema/anomalies.ts';
import { PfnPair, Sev } from '../../components/badges.tsx';
import { hex, wallTime } from '../../components/format.ts';
import { SrcLink, useSrc, withSrc } from '../../components/src.tsx';

export function AnomalyTable({ anomalies, limit = 500, compact = false, testId = 'anomaly-table' }: { anomalies: Anomaly[]; limit?: number; compact?: boolean; testId?: string }) {
  const router = useRouter();
  const src = useSrc();
  // Rows that arrive after the first render flash once; the backlog does not.
  const firstSeq = useRef<number | null>(null);
  if (firstSeq.current === null && anomalies.length) firstSeq.current = anomalies[0]!.seq;
  const rows = anomalies.slice(0, limit);
  return (
    <table className="t" data-testid={testId}>
      <thead>
        <tr>
          <th className="num">seq</th>
          {compact ? null : <th>time</th>}
          <th>severity</th>
          <th>rule</th>
          <th className="num">pid</th>
          {compact ? null : <th>comm</th>}
          <th>addr</th>
          {compact ? null : <th>pfn pinned → now</th>}
          <th>verdict</th>
          {compact ? null : <th>summary</th>}
        </tr>
      </thead>
      <tbody>
        {rows.map((a) => (
          <tr
            key={a.seq}
            className={`clickable${firstSeq.current !== null && a.seq > firstSeq.current ? ' fresh' : ''}`}
            data-rule={a.rule}
            data-pid={a.pid}
            data-addr={hex(a.addr)}
            data-seq={a.seq}
            data-severity={a.severity}
            data-confirmed={a.confirmed ? 'true' : 'false'}
            onClick={() => router.push(withSrc(`/anomalies/${a.seq}`, src))}
          >
            <td className="num mono">
              <SrcLink href={`/anomalies/${a.seq}`} onClick={(e) => e.stopPropagation()}>
                {a.seq}
              </SrcLink>
            </td>
            {compact ? null : <td className="mono muted nowrap">{wallTime(a.wallMs)}</td>}
            <td>
              <Sev s={a.severity} />
            </td>
            <td className="mono nowrap">{a.rule}</td>
            <td className="num mono">{a.pid}</td>
            {compact ? null : <td className="mono nowrap">{a.comm}</td>}
            <td className="mono nowrap">
              {hex(a.addr)}
              {a.len > 4096 ? <span className="faint"> +{a.len / 4096}p</span> : null}
            </td>
            {compact ? null : (
              <td className="nowrap">
                <PfnPair pinned={a.pfn} current={a.newPfn} />
              </td>
            )}
            <td className="nowrap">
              {a.confirmed ? <span className="tag ok">confirmed</span> : <span className="tag">inferred</span>}
              {a.lowConfidence ? <span className="tag warn" title="events were lost near the trigger">low conf.</span> : null}
            </td>
            {compact ? null : <td className="muted">{a.summary}</td>}
          </tr>
        ))}
      </tbody>
    </table>
  );
}
