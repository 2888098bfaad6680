'use client';
// Incidents, newest first: one line per incident (severity, title, process, verdict, open/closed) with the
// anomalies it groups underneath as its evidence rows. Each incident carries data-incident-id, data-severity,
// data-pid and data-state; its rows are the anomaly table's rows (data-rule, data-pid, data-addr, data-seq).
// Anomalies not (yet) in an incident — the incident message follows its anomaly — are listed after them.
import type { Anomaly } from '../../../schema/anomalies.ts';
import type { Incident } from '../../../schema/incidents.ts';
import { Sev } from '../../components/badges.tsx';
import { wallTime } from '../../components/format.ts';
import { AnomalyTable } from './AnomalyTable.tsx';

export function IncidentList({ incidents, anomalies, limit = 200 }: { incidents: Incident[]; anomalies: Anomaly[]; limit?: number }) {
  const bySeq = new Map(anomalies.map((a) => [a.seq, a]));
  const grouped = new Set<number>();
  const shown: { incident: Incident; rows: Anomaly[] }[] = [];
  for (const incident of incidents) {
    const rows: Anomaly[] = [];
    for (const seq of incident.anomalySeqs) {
      grouped.add(seq);
      const a = bySeq.get(seq);
      if (a) rows.push(a);
    }
    if (rows.length) shown.push({ incident, rows: rows.sort((x, y) => y.seq - x.seq) });
  }
  const loose = anomalies.filter((a) => !grouped.has(a.seq));
  return (
    <div data-testid="incident-list">
      {shown.slice(0, limit).map(({ incident: i, rows }) => (
        <article
          key={i.id}
          className="incident"
          data-incident-id={i.id}
          data-severity={i.severity}
          data-pid={i.pid}
          data-state={i.closedWallMs === null ? 'open' : 'closed'}
        >
          <header>
            <Sev s={i.severity} />
            <strong className="incident-title" data-testid="incident-title">
              {i.title}
            </strong>
            <span className="muted mono nowrap">
              {i.comm}[{i.pid}] · {wallTime(i.openedWallMs)} · {rows.length} finding{rows.length === 1 ? '' : 's'}
              {i.closedWallMs === null ? '' : ' · closed'}
            </span>
          </header>
          <AnomalyTable anomalies={rows} compact testId="incident-anomalies" />
        </article>
      ))}
      {loose.length ? (
        <article className="incident" data-incident-id="">
          <header>
            <strong className="muted">not grouped yet</strong>
          </header>
          <AnomalyTable anomalies={loose} compact testId="incident-anomalies" />
        </article>
      ) : null}
    </div>
  );
}
