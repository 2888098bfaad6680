'use client';
// The fleet as Prometheus sees it (GET /api/fleet, queried by the server every few seconds): one row per host
// (data-instance, data-host, data-health) and the alerts Alertmanager delivered to this dashboard
// (data-alertname, data-status, data-host).
import type { FleetData } from '../../shared/wire.ts';
import { Sev } from '../../components/badges.tsx';
import { bytes, wallTime } from '../../components/format.ts';
import { useJson } from '../../components/useJson.ts';
import type { Severity } from '../../../schema/anomalies.ts';

const REFRESH_MS = 3_000;
const HEALTH_CLASS: Record<string, string> = { ok: 'ok', replay: '', down: 'bad', 'not capturing': 'bad', blind: 'warn' };

function age(s: number | null): string {
  if (s === null) return '—';
  return s < 90 ? `${Math.round(s)} s` : s < 5400 ? `${Math.round(s / 60)} min` : `${(s / 3600).toFixed(1)} h`;
}

export function FleetView() {
  const fleet = useJson<FleetData>('/api/fleet', REFRESH_MS);
  const d = fleet.data;
  return (
    <div className="grid" data-view="fleet">
      <section className="panel">
        <header>
          <h2>Fleet</h2>
          <span className="muted">
            {d ? (d.prometheus ? `${d.hosts.length} hosts from Prometheus at ${d.prometheus}, ${wallTime(d.queriedMs)}` : 'no Prometheus configured') : (fleet.error ?? 'asking Prometheus…')}
          </span>
        </header>
        {d?.error ? (
          <div className="body" role="status" data-status-level="error">
            {d.error}
          </div>
        ) : null}
        <div className="body flush">
          <table className="t" data-testid="fleet-hosts">
            <thead>
              <tr>
                <th>host</th>
                <th>kernel</th>
                <th>health</th>
                <th className="num">pins</th>
                <th className="num">pinned</th>
                <th className="num">divergent pages</th>
                <th className="num">open incidents</th>
                <th className="num">last event</th>
                <th>firing</th>
                <th>dashboard</th>
              </tr>
            </thead>
            <tbody>
              {(d?.hosts ?? []).map((h) => (
                <tr key={h.instance} data-instance={h.instance} data-host={h.host ?? ''} data-health={h.health} data-open-incidents={h.openIncidents}>
                  <td className="mono">{h.host ?? h.instance}</td>
                  <td className="mono muted">{h.kernel ?? '—'}</td>
                  <td>
                    <span className={`tag ${HEALTH_CLASS[h.health] ?? ''}`}>{h.health}</span>
                  </td>
                  <td className="num">{h.pins}</td>
                  <td className="num">{bytes(h.pinnedBytes)}</td>
                  <td className="num" style={{ color: h.divergentPages ? 'var(--crit)' : undefined }}>
                    {h.divergentPages}
                  </td>
                  <td className="num">
                    {h.openIncidents}
                    {h.openCritical ? <span style={{ color: 'var(--crit)' }}> ({h.openCritical} crit)</span> : null}
                  </td>
                  <td className="num">{age(h.lastEventAgeSeconds)}</td>
                  <td className="mono">{h.firing.join(', ')}</td>
                  <td>
                    <a href={`http://${h.instance}/`} target="_blank" rel="noreferrer">
                      {h.instance} →
                    </a>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
          {d?.prometheus && d.hosts.length === 0 && !d.error ? <div className="empty">Prometheus has no pinwatch targets (job pinwatch in its scrape config)</div> : null}
        </div>
      </section>

      <section className="panel">
        <header>
          <h2>Alerts from Alertmanager</h2>
          <span className="muted">delivered to POST /api/alerts (webhook_configs in alertmanager.yml)</span>
        </header>
        <div className="body flush">
          {d?.alerts.length ? (
            <table className="t" data-testid="fleet-alerts">
              <thead>
                <tr>
                  <th>status</th>
                  <th>severity</th>
                  <th>alert</th>
                  <th>host</th>
                  <th>summary</th>
                  <th>since</th>
                </tr>
              </thead>
              <tbody>
                {d.alerts.map((a) => (
                  <tr key={a.fingerprint} data-alertname={a.name} data-status={a.status} data-host={a.host ?? ''}>
                    <td>
                      <span className={`tag ${a.status === 'firing' ? 'bad' : 'ok'}`}>{a.status}</span>
                    </td>
                    <td>{a.severity && ['critical', 'high', 'warning', 'info'].includes(a.severity) ? <Sev s={a.severity as Severity} /> : (a.severity ?? '')}</td>
                    <td className="mono">{a.name}</td>
                    <td className="mono">{a.host ?? a.instance ?? ''}</td>
                    <td>{a.dashboard ? <a href={a.dashboard}>{a.summary}</a> : a.summary}</td>
                    <td className="mono muted nowrap">{wallTime(Date.parse(a.startsAt))}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          ) : (
            <div className="empty">no alert delivered yet</div>
          )}
        </div>
      </section>
    </div>
  );
}
