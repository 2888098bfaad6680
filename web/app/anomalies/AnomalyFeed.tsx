'use client';
// The live anomaly feed with filters kept in the URL (shareable, and the overview links into it by rule): incidents
// with their anomalies underneath (default), or every anomaly as one table (?view=rows).
import { useRouter, useSearchParams } from 'next/navigation';
import { RULE_IDS, SEVERITIES } from '../../../schema/anomalies.ts';
import { useNotifications } from '../../components/Notifier.tsx';
import { useLive } from '../../components/live/LiveProvider.tsx';
import { AnomalyTable } from './AnomalyTable.tsx';
import { IncidentList } from './IncidentList.tsx';

export function AnomalyFeed() {
  const live = useLive();
  const params = useSearchParams();
  const router = useRouter();
  const notifications = useNotifications();
  const rule = params.get('rule') ?? '';
  const severity = params.get('severity') ?? '';
  const who = (params.get('q') ?? '').trim();
  const confirmed = params.get('confirmed') ?? '';
  const view = params.get('view') === 'rows' ? 'rows' : 'incidents';

  const setParam = (k: string, v: string) => {
    const q = new URLSearchParams(params.toString());
    if (v) q.set(k, v);
    else q.delete(k);
    router.replace(`/anomalies${q.toString() ? `?${q}` : ''}`);
  };

  const whoPid = /^\d+$/.test(who) ? Number(who) : null;
  const shown = live.anomalies.filter(
    (a) =>
      (!rule || a.rule === rule) &&
      (!severity || a.severity === severity) &&
      (!who || a.pid === whoPid || a.comm.includes(who)) &&
      (!confirmed || (confirmed === 'confirmed') === a.confirmed),
  );

  return (
    <section className="panel" data-view="anomalies">
      <header>
        <h2>{view === 'incidents' ? 'Incidents' : 'Anomalies'}</h2>
        <span className="muted">
          {view === 'incidents' ? `${live.incidents.length} incidents, ` : ''}
          {shown.length === live.anomalies.length ? `${live.anomalies.length}` : `${shown.length} of ${live.anomalies.length}`} anomalies, newest first
          {shown.length > 500 ? ' (first 500 shown)' : ''}
        </span>
        <span className="spacer" />
        {live.source?.kind === 'live' ? (
          notifications.permission === 'granted' ? (
            <span className="tag ok">notifying critical/high</span>
          ) : notifications.permission === 'unsupported' ? null : (
            <button onClick={notifications.request} disabled={notifications.permission === 'denied'} title="browser notification for critical and high anomalies">
              {notifications.permission === 'denied' ? 'notifications blocked' : 'Notify me (critical/high)'}
            </button>
          )
        ) : null}
      </header>
      <div className="filters">
        <label>
          show
          <select value={view} onChange={(e) => setParam('view', e.target.value === 'rows' ? 'rows' : '')} data-filter="view">
            <option value="incidents">incidents (findings underneath)</option>
            <option value="rows">every anomaly</option>
          </select>
        </label>
        <label>
          rule
          <select value={rule} onChange={(e) => setParam('rule', e.target.value)} data-filter="rule">
            <option value="">all</option>
            {RULE_IDS.map((r) => (
              <option key={r} value={r}>
                {r}
              </option>
            ))}
          </select>
        </label>
        <label>
          severity
          <select value={severity} onChange={(e) => setParam('severity', e.target.value)} data-filter="severity">
            <option value="">all</option>
            {SEVERITIES.map((s) => (
              <option key={s} value={s}>
                {s}
              </option>
            ))}
          </select>
        </label>
        <label>
          pid/comm
          <input type="search" value={who} placeholder="1234 or qemu" onChange={(e) => setParam('q', e.target.value)} data-filter="who" size={14} />
        </label>
        <label>
          verdict
          <select value={confirmed} onChange={(e) => setParam('confirmed', e.target.value)} data-filter="confirmed">
            <option value="">all</option>
            <option value="confirmed">confirmed (pagemap)</option>
            <option value="inferred">inferred (events)</option>
          </select>
        </label>
      </div>
      <div className="body flush scroll" style={{ maxHeight: 'calc(100vh - 170px)' }}>
        {shown.length ? (
          view === 'incidents' ? <IncidentList incidents={live.incidents} anomalies={shown} /> : <AnomalyTable anomalies={shown} />
        ) : (
          <div className="empty">
            {live.anomalies.length ? 'no anomaly matches the filters' : live.source?.kind === 'live' ? 'no anomalies yet — run a scenario to see one' : 'no anomalies in this recording'}
          </div>
        )}
      </div>
    </section>
  );
}
