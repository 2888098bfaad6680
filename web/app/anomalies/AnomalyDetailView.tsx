'use client';
// One anomaly: what happened to which page, why that corrupts data (the rule's explanation and the seed thread
// it comes from), the evidence the verdict rests on, and the page's whole timeline.
import { useEffect, useState } from 'react';
import type { Anomaly, PagemapRead } from '../../../schema/anomalies.ts';
import type { AnomalyDetail } from '../../shared/wire.ts';
import { Hex, PfnPair, Sev, State } from '../../components/badges.tsx';
import { describeEvent, hex, pinFlags, range, relative, wallDateTime } from '../../components/format.ts';
import { RichText } from '../../components/RichText.tsx';
import { SEED_THREADS } from '../../components/seeds.ts';
import { SrcLink, useSrc, withSrc } from '../../components/src.tsx';
import { PageTimeline } from '../../components/timeline/PageTimeline.tsx';
import { useJson } from '../../components/useJson.ts';
import { useLive } from '../../components/live/LiveProvider.tsx';

export function AnomalyDetailView({ seq }: { seq: number }) {
  const src = useSrc();
  const live = useLive();
  // A live anomaly can be published before the store's batch reaches SQLite: retry briefly.
  const [attempt, setAttempt] = useState(0);
  const detail = useJson<AnomalyDetail>(Number.isSafeInteger(seq) ? withSrc(`/api/anomalies/${seq}`, src, { a: attempt || undefined }) : null);
  const needsEvents = detail.data && detail.data.anomaly.evidence.some((e) => e.type === 'event') && detail.data.events.length === 0;
  useEffect(() => {
    if ((detail.error || needsEvents) && attempt < 8) {
      const t = setTimeout(() => setAttempt((n) => n + 1), 750);
      return () => clearTimeout(t);
    }
  }, [detail.error, needsEvents, attempt]);

  const fromFeed = live.anomalies.find((a) => a.seq === seq);
  const a: Anomaly | undefined = detail.data?.anomaly ?? fromFeed;
  if (!a) {
    return <div className="panel"><div className="empty">{detail.error && attempt >= 8 ? detail.error : `loading anomaly ${seq}…`}</div></div>;
  }
  const rule = detail.data?.rule ?? null;
  const pin = detail.data?.pin ?? null;
  const eventsBySeq = new Map((detail.data?.events ?? []).map((e) => [e.seq, e]));

  return (
    <div className="grid" data-view="anomaly-detail" data-seq={a.seq} data-rule={a.rule} data-pid={a.pid} data-addr={hex(a.addr)}>
      <section className="panel">
        <header>
          <SrcLink href="/anomalies">← anomalies</SrcLink>
          <Sev s={a.severity} />
          <h1 className="mono">{a.rule}</h1>
          <span className="muted">{rule?.title ?? ''}</span>
          <span className="spacer" />
          <span className="mono faint">#{a.seq}</span>
        </header>
        <div className="body grid cols-2">
          <dl className="kv">
            <dt>process</dt>
            <dd>
              {a.comm} [{a.pid}]
            </dd>
            <dt>address</dt>
            <dd>
              {range(a.addr, a.len)} ({a.len / 4096} page{a.len > 4096 ? 's' : ''})
            </dd>
            <dt>pfn pinned → PTE now</dt>
            <dd>
              <PfnPair pinned={a.pfn} current={a.newPfn} />
            </dd>
            <dt>verdict</dt>
            <dd>
              {a.confirmed ? 'confirmed: /proc/PID/pagemap shows it' : 'inferred from events (no pagemap read confirms it)'}
              {a.lowConfidence ? ' — low confidence: events were lost around the trigger' : ''}
            </dd>
            <dt>raised</dt>
            <dd>{wallDateTime(a.wallMs)}</dd>
          </dl>
          <dl className="kv">
            <dt>pin</dt>
            <dd>
              {pin ? (
                <>
                  #{pin.id} {pin.source} {pin.handle}
                </>
              ) : a.pinId !== null ? (
                `#${a.pinId}`
              ) : (
                '—'
              )}
            </dd>
            {pin ? (
              <>
                <dt>pinned range</dt>
                <dd>
                  {range(pin.addr, pin.len)} · {pin.pageCount} pages · {pinFlags(pin)} · {pin.backing}
                </dd>
                <dt>pin state</dt>
                <dd>
                  <State s={pin.state} /> {pin.divergedPages ? `(${pin.divergedPages} page${pin.divergedPages > 1 ? 's' : ''} diverged)` : ''}
                </dd>
              </>
            ) : null}
            <dt>summary</dt>
            <dd style={{ fontFamily: 'var(--sans)', fontSize: 13 }}>{a.summary}</dd>
          </dl>
        </div>
      </section>

      <div className="grid cols-2">
        <section className="panel" data-testid="explanation">
          <header>
            <h2>Explanation</h2>
          </header>
          <div className="body explain">
            {rule ? (
              <>
                {a.severity !== rule.severity ? (
                  // The source's promise or the teardown evidence changed the verdict: say so first, and do not
                  // present the hazard text as what happened here.
                  <div data-testid="judged">
                    <div className="label">this finding</div>
                    <div className="text">
                      judged {a.severity}, not {rule.severity}: {a.summary}
                    </div>
                  </div>
                ) : null}
                <div>
                  <div className="label">{a.severity !== rule.severity ? `why it would corrupt data (as ${rule.severity})` : 'why it corrupts data'}</div>
                  <div className="text">
                    <RichText text={rule.whyItMatters} />
                  </div>
                </div>
                <div>
                  <div className="label">mechanism</div>
                  <div className="text">
                    <RichText text={rule.mechanism} />
                  </div>
                </div>
                <div>
                  <div className="label">seen by</div>
                  <div className="text">{rule.modes.join(' and ')} mode</div>
                </div>
                <div>
                  <div className="label">source thread{rule.seeds.length > 1 ? 's' : ''}</div>
                  {rule.seeds.map((id) => {
                    const t = SEED_THREADS[id];
                    return (
                      <div key={id} className="text" style={{ marginBottom: 4 }}>
                        <span className="mono">seed {id}</span>
                        {t ? (
                          <>
                            {' '}
                            — <em>{t.title}</em> ({t.who}, {t.year}). <span className="muted">{t.lesson}</span>
                          </>
                        ) : null}
                      </div>
                    );
                  })}
                </div>
              </>
            ) : (
              <div className="muted">{detail.data ? 'no explanation for this rule in the catalog' : 'loading…'}</div>
            )}
          </div>
        </section>

        <section className="panel" data-testid="evidence">
          <header>
            <h2>Evidence</h2>
            <span className="muted">{a.evidence.length} items, times relative to the trigger</span>
          </header>
          <div className="body flush scroll" style={{ maxHeight: 380 }}>
            <table className="t">
              <thead>
                <tr>
                  <th>what</th>
                  <th className="num">t</th>
                  <th>detail</th>
                  <th>note</th>
                </tr>
              </thead>
              <tbody>
                {a.evidence.map((ev, i) => {
                  if (ev.type === 'event') {
                    const e = eventsBySeq.get(ev.seq);
                    return (
                      <tr key={i}>
                        <td className="mono">
                          event #{ev.seq}
                          {e ? <div className="faint">{e.kind}</div> : null}
                        </td>
                        <td className="num mono muted">{e ? relative(e.tsNs, a.tsNs) : ''}</td>
                        <td className="mono">{e ? describeEvent(e.kind, e.payload) : <span className="faint">not in the store yet</span>}</td>
                        <td className="muted">{ev.note}</td>
                      </tr>
                    );
                  }
                  return <PagemapRow key={i} read={ev.read} note={ev.note} t0={a.tsNs} pinned={a.pfn} />;
                })}
              </tbody>
            </table>
          </div>
        </section>
      </div>

      <section className="panel" data-testid="anomaly-timeline">
        <header>
          <h2>Page timeline</h2>
          <span className="mono muted">
            {a.comm} [{a.pid}] page {hex(a.addr)}
          </span>
          <span className="spacer" />
          <SrcLink href="/timeline" params={{ pid: a.pid, addr: hex(a.addr) }}>
            open full timeline →
          </SrcLink>
        </header>
        <div className="body">
          <PageTimeline pid={a.pid} addr={a.addr} highlightSeq={a.seq} />
        </div>
      </section>
    </div>
  );
}

function PagemapRow({ read, note, t0, pinned }: { read: PagemapRead; note: string; t0: number; pinned: number | null }) {
  const moved = pinned !== null && read.pfn !== null && read.pfn !== pinned;
  return (
    <tr>
      <td className="mono">
        pagemap
        <div className="faint">{hex(read.addr)}</div>
      </td>
      <td className="num mono muted">{relative(read.tsNs, t0)}</td>
      <td className="mono">
        {read.error ? (
          <span className="pfn-moved">read failed: {read.error}</span>
        ) : read.present ? (
          <>
            present, pfn <Hex n={read.pfn} className={moved ? 'pfn-moved' : pinned !== null ? 'pfn-same' : ''} />
            {moved ? ' ≠ pinned ' + hex(pinned) : pinned !== null ? ' = pinned' : ''}
          </>
        ) : read.swapped ? (
          'swapped out'
        ) : (
          'not present'
        )}
      </td>
      <td className="muted">{note}</td>
    </tr>
  );
}
