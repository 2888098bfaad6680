'use client';
// Overview: what is traced (host, kernel, bpftrace, mode, probes and why some are left out, lost events), how
// busy it is (event rates per kind), what it could not see (capture gaps, pinned memory of unknown source) and what
// was found (anomalies by rule and severity).
import type { VerifySweep } from '../../../schema/metrics.ts';
import { RULE_IDS, SEVERITIES, type Severity } from '../../../schema/anomalies.ts';
import type { OverviewData } from '../../shared/wire.ts';
import { isLivePin } from '../../../schema/pins.ts';
import { sourceCoverage } from '../../../schema/pin-sources.ts';
import { Sev } from '../../components/badges.tsx';
import { duration, wallDateTime } from '../../components/format.ts';
import { useLive } from '../../components/live/LiveProvider.tsx';
import { SrcLink, useSrc, withSrc } from '../../components/src.tsx';
import { useJson } from '../../components/useJson.ts';
import { AnomalyBars } from './AnomalyBars.tsx';
import { BlindSpotsPanel } from './BlindSpotsPanel.tsx';
import { RatesChart } from './RatesChart.tsx';
import { RecordingsPanel } from './RecordingsPanel.tsx';

export function OverviewView() {
  const live = useLive();
  const src = useSrc();
  const isLive = live.source?.kind === 'live';
  const overview = useJson<OverviewData>(live.source ? withSrc('/api/overview', src) : null, isLive ? 5000 : 0);
  const s = live.session;
  const probes = s?.probes ?? [];
  const attached = probes.filter((p) => p.attached);
  const left = probes.filter((p) => !p.attached);
  const lost = Math.max(s?.lostEvents ?? 0, overview.data?.lostEvents ?? 0);
  const runFor = s ? (s.endedWallMs ?? (isLive ? Date.now() : s.startedWallMs)) - s.startedWallMs : 0;

  const bySevRule = new Map<string, Record<Severity, number>>();
  let confirmed = 0;
  for (const a of live.anomalies) {
    let row = bySevRule.get(a.rule);
    if (!row) bySevRule.set(a.rule, (row = { critical: 0, high: 0, warning: 0, info: 0 }));
    row[a.severity]++;
    if (a.confirmed) confirmed++;
  }
  const ruleRows = RULE_IDS.filter((r) => bySevRule.has(r)).map((r) => ({ rule: r, ...bySevRule.get(r)! }));
  const liveDiverged = live.pins.filter((p) => p.state === 'diverged' && p.releasedNs === null).length;
  const livePins = live.pins.filter(isLivePin).length;
  // The main program's in-kernel count per kind minus what arrived (collector/capture-loss.ts), largest first.
  const lostKinds = Object.entries(s?.lostByKind ?? {}).sort((a, b) => b[1] - a[1]);
  const gapCount = overview.data?.gapCount ?? 0;
  const openGaps = (overview.data?.gaps ?? []).filter((g) => g.endNs === null).length;
  const totalEvents = Object.values(overview.data?.eventsByKind ?? {}).reduce((a, b) => a + (b ?? 0), 0);

  return (
    <div className="grid" data-view="overview">
      <div className="stats">
        <div className="stat" data-testid="incident-count">
          <span className="v">{live.incidents.length}</span>
          <span className="k">incidents ({live.incidents.filter((i) => i.closedWallMs === null).length} open)</span>
        </div>
        <div className="stat">
          <span className="v">{live.anomalies.length}</span>
          <span className="k">anomalies ({confirmed} confirmed by pagemap)</span>
        </div>
        <div className="stat">
          <span className="v" style={{ color: (bySevRuleTotal(ruleRows, 'critical') && 'var(--crit)') || undefined }}>{bySevRuleTotal(ruleRows, 'critical')}</span>
          <span className="k">critical</span>
        </div>
        <div className="stat">
          <span className="v">{livePins}</span>
          <span className="k">pins live ({liveDiverged} diverged)</span>
        </div>
        <div className="stat">
          <span className="v">{totalEvents.toLocaleString('en-US')}</span>
          <span className="k">{isLive ? 'events since the server started' : 'events recorded'}</span>
        </div>
        <div className="stat">
          <span className="v" style={{ color: lost ? 'var(--warn)' : undefined }}>{lost.toLocaleString('en-US')}</span>
          <span className="k">events lost</span>
        </div>
        <div className="stat" data-testid="gap-count">
          <span className="v" style={{ color: openGaps ? 'var(--crit)' : gapCount ? 'var(--warn)' : undefined }}>{gapCount}</span>
          <span className="k">capture gaps{openGaps ? ` (${openGaps} open)` : ''}</span>
        </div>
        <div className="stat">
          <span className="v">{s ? duration(runFor * 1e6) : '—'}</span>
          <span className="k">{isLive ? 'capturing for' : 'recording length'}</span>
        </div>
      </div>

      <div className="grid cols-2">
        <section className="panel">
          <header>
            <h2>Session</h2>
            <span className="spacer" />
            {live.source ? <span className="faint mono">{live.source.file ?? ''}</span> : null}
          </header>
          <div className="body">
            {s ? (
              <dl className="kv" data-testid="session">
                <dt>host</dt>
                <dd>{s.host}</dd>
                <dt>kernel</dt>
                <dd>{s.kernel}</dd>
                <dt>bpftrace</dt>
                <dd>{s.bpftraceVersion}</dd>
                <dt>mode</dt>
                <dd>
                  {s.mode}
                  {s.mode === 'tracepoint' ? <span className="faint"> (no kprobes on this kernel: syscalls, faults, khugepaged tracepoints + pagemap)</span> : null}
                </dd>
                <dt>started</dt>
                <dd>{wallDateTime(s.startedWallMs)}</dd>
                <dt>ended</dt>
                <dd>{s.endedWallMs ? wallDateTime(s.endedWallMs) : isLive ? 'running' : '—'}</dd>
                <dt>probes</dt>
                <dd>
                  {attached.length} attached, {left.length} left out
                </dd>
                <dt>lost events</dt>
                <dd data-testid="lost-events">
                  {lost}
                  {lostKinds.length ? (
                    <span className="faint">
                      {' '}
                      (by kind: {lostKinds.map(([k, n]) => `${k} ${n.toLocaleString('en-US')}`).join(', ')})
                    </span>
                  ) : null}
                </dd>
                {overview.data?.verifySweep ? (
                  <>
                    <dt>pagemap sweep</dt>
                    <dd data-testid="verify-sweep">{sweepText(overview.data.verifySweep)}</dd>
                  </>
                ) : null}
                {(overview.data?.sessions.length ?? 0) > 1 ? (
                  <>
                    <dt>sessions in file</dt>
                    <dd>{overview.data!.sessions.length}</dd>
                  </>
                ) : null}
              </dl>
            ) : (
              <div className="empty">{live.status?.level === 'error' ? 'no session: live capture did not start' : 'waiting for the collector…'}</div>
            )}
          </div>
        </section>

        <section className="panel">
          <header>
            <h2>Probes</h2>
            <span className="spacer" />
            <span className="muted">
              {attached.length}/{probes.length} attached
            </span>
          </header>
          <div className="body flush scroll" style={{ maxHeight: 260 }}>
            {probes.length ? (
              <table className="t" data-testid="probes">
                <thead>
                  <tr>
                    <th>script</th>
                    <th>state</th>
                    <th>reason</th>
                  </tr>
                </thead>
                <tbody>
                  {[...left, ...attached].map((p) => (
                    <tr key={p.script}>
                      <td className="mono">{p.script}</td>
                      <td>{p.attached ? <span className="tag ok">attached</span> : <span className="tag warn">left out</span>}</td>
                      <td className="muted">{p.reason ?? ''}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            ) : (
              <div className="empty">no probe list</div>
            )}
          </div>
        </section>
      </div>

      {s ? (
        <section className="panel">
          <header>
            <h2>Pin sources</h2>
            <span className="spacer" />
            <span className="muted">what this {s.mode} session can see, and why not</span>
          </header>
          <div className="body flush">
            <table className="t" data-testid="pin-sources">
              <tbody>
                {sourceCoverage(s.mode).map((c) => (
                  <tr key={c.source}>
                    <td>{c.label}</td>
                    <td>{c.seen ? <span className="tag ok">seen</span> : <span className="tag warn">not seen</span>}</td>
                    <td className="muted">{c.detail}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        </section>
      ) : null}

      <BlindSpotsPanel data={overview.data ?? null} isLive={isLive} />

      <section className="panel">
        <header>
          <h2>Event rates</h2>
          <span className="muted">events/s per kind, {isLive ? 'last 10 minutes' : 'whole recording'}</span>
        </header>
        <div className="body">
          <RatesChart rates={live.rates} />
        </div>
      </section>

      <section className="panel" data-testid="latest-incidents">
        <header>
          <h2>Latest incidents</h2>
          <span className="spacer" />
          <SrcLink href="/anomalies">incidents and their findings →</SrcLink>
        </header>
        <div className="body flush">
          {live.incidents.length ? (
            <table className="t">
              <tbody>
                {live.incidents.slice(0, 5).map((i) => (
                  <tr key={i.id} data-incident-id={i.id} data-severity={i.severity}>
                    <td>
                      <Sev s={i.severity} />
                    </td>
                    <td>
                      <SrcLink href={`/anomalies/${i.anomalySeqs[0]}`}>{i.title}</SrcLink>
                    </td>
                    <td className="mono nowrap muted">
                      {i.comm}[{i.pid}] · {i.anomalySeqs.length} finding{i.anomalySeqs.length === 1 ? '' : 's'}
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          ) : (
            <div className="empty">no incidents {isLive ? 'yet' : 'in this recording'}</div>
          )}
        </div>
      </section>

      <div className="grid cols-2">
        <section className="panel">
          <header>
            <h2>Anomalies by rule and severity</h2>
            <span className="spacer" />
            <SrcLink href="/anomalies">feed →</SrcLink>
          </header>
          <div className="body flush">
            {ruleRows.length ? (
              <>
                <AnomalyBars rows={ruleRows} />
                <table className="t" data-testid="anomalies-by-rule">
                  <thead>
                    <tr>
                      <th>rule</th>
                      {SEVERITIES.map((sv) => (
                        <th key={sv} className="num">
                          <Sev s={sv} />
                        </th>
                      ))}
                    </tr>
                  </thead>
                  <tbody>
                    {ruleRows.map((r) => (
                      <tr key={r.rule}>
                        <td className="mono">
                          <SrcLink href="/anomalies" params={{ rule: r.rule }}>
                            {r.rule}
                          </SrcLink>
                        </td>
                        {SEVERITIES.map((sv) => (
                          <td key={sv} className="num mono">
                            {r[sv] || <span className="faint">·</span>}
                          </td>
                        ))}
                      </tr>
                    ))}
                  </tbody>
                </table>
              </>
            ) : (
              <div className="empty">no anomalies {isLive ? 'yet' : 'in this recording'}</div>
            )}
          </div>
        </section>

        <section className="panel">
          <header>
            <h2>Events by kind</h2>
            <span className="spacer" />
            <span className="muted">{isLive ? 'since the server started' : 'in the recording'}</span>
          </header>
          <div className="body flush scroll" style={{ maxHeight: 300 }}>
            <table className="t">
              <tbody>
                {Object.entries(overview.data?.eventsByKind ?? {})
                  .sort((a, b) => (b[1] ?? 0) - (a[1] ?? 0))
                  .map(([k, n]) => (
                    <tr key={k}>
                      <td className="mono">{k}</td>
                      <td className="num mono">{(n ?? 0).toLocaleString('en-US')}</td>
                    </tr>
                  ))}
              </tbody>
            </table>
            {overview.error ? <div className="empty">{overview.error}</div> : null}
          </div>
        </section>
      </div>

      <RecordingsPanel />
    </div>
  );
}

function bySevRuleTotal(rows: Record<Severity, number>[], s: Severity): number {
  return rows.reduce((n, r) => n + r[s], 0);
}

/** "full sweep 12.3 s, 1.8 % of a core (budget 5 %), 64M pages": how stale a pinned page's check can be, and its cost. */
function sweepText(v: VerifySweep): string {
  const full = v.fullSweepSeconds === null ? 'first sweep running' : `full sweep ${v.fullSweepSeconds.toFixed(1)} s`;
  const pages = v.livePages >= 1 << 20 ? `${(v.livePages / (1 << 20)).toFixed(1)}M` : String(v.livePages);
  return `${full}, ${(v.cpuShare * 100).toFixed(1)} % of a core (budget ${(v.cpuShareBudget * 100).toFixed(0)} %), ${pages} pinned pages`;
}

