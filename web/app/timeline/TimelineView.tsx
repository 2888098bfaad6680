'use client';
// Picks the page (from the URL, a form, or the list of pinned pages with the most happening to them) and draws
// its timeline.
import { useRouter, useSearchParams } from 'next/navigation';
import { useState } from 'react';
import type { TimelinePageRef } from '../../shared/wire.ts';
import { PfnPair } from '../../components/badges.tsx';
import { hex } from '../../components/format.ts';
import { useLive } from '../../components/live/LiveProvider.tsx';
import { SrcLink, useSrc, withSrc } from '../../components/src.tsx';
import { PageTimeline } from '../../components/timeline/PageTimeline.tsx';
import { useJson } from '../../components/useJson.ts';

function parseAddr(s: string | null): number | null {
  if (!s || !/^(0x[0-9a-fA-F]{1,16}|[0-9]{1,17})$/.test(s)) return null;
  const n = Number(BigInt(s));
  return Number.isSafeInteger(n) ? n : null;
}

export function TimelineView() {
  const params = useSearchParams();
  const src = useSrc();
  const router = useRouter();
  const live = useLive();
  const pid = /^\d+$/.test(params.get('pid') ?? '') ? Number(params.get('pid')) : null;
  const addr = parseAddr(params.get('addr'));
  const pages = useJson<TimelinePageRef[]>(withSrc('/api/timeline/pages', src), live.source?.kind === 'live' ? 3000 : 0);
  const [formPid, setFormPid] = useState(pid !== null ? String(pid) : '');
  const [formAddr, setFormAddr] = useState(addr !== null ? hex(addr) : '');

  return (
    <div className="grid" data-view="timeline">
      <section className="panel">
        <header>
          <h2>Page, where are you</h2>
          <span className="muted">every event that touched one pinned page, and the pfn each pagemap read saw</span>
          <span className="spacer" />
          <form
            style={{ display: 'flex', gap: 6, alignItems: 'center' }}
            onSubmit={(e) => {
              e.preventDefault();
              if (/^\d+$/.test(formPid) && parseAddr(formAddr) !== null) router.push(withSrc('/timeline', src, { pid: formPid, addr: formAddr }));
            }}
          >
            <input type="text" placeholder="pid" value={formPid} onChange={(e) => setFormPid(e.target.value.trim())} size={7} />
            <input type="text" placeholder="0x7f…000" value={formAddr} onChange={(e) => setFormAddr(e.target.value.trim())} size={16} />
            <button type="submit">show</button>
          </form>
        </header>
        <div className="body">
          {pid !== null && addr !== null ? (
            <PageTimeline pid={pid} addr={addr} />
          ) : (
            <div className="empty">choose a pinned page below, or enter a pid and a user address</div>
          )}
        </div>
      </section>

      <section className="panel">
        <header>
          <h2>Pinned pages</h2>
          <span className="muted">most eventful first</span>
        </header>
        <div className="body flush scroll" style={{ maxHeight: 360 }}>
          {pages.data && pages.data.length ? (
            <table className="t" data-testid="pinned-pages">
              <thead>
                <tr>
                  <th className="num">pid</th>
                  <th>comm</th>
                  <th>page</th>
                  <th className="num">pin</th>
                  <th>pfn pinned → now</th>
                  <th className="num">anomalies</th>
                  <th />
                </tr>
              </thead>
              <tbody>
                {pages.data.map((p) => {
                  const selected = p.pid === pid && p.addr === addr;
                  return (
                    <tr key={`${p.pinId}-${p.addr}`} className={`clickable${selected ? ' selected' : ''}`} onClick={() => router.push(withSrc('/timeline', src, { pid: p.pid, addr: hex(p.addr) }))}>
                      <td className="num mono">{p.pid}</td>
                      <td className="mono">{p.comm}</td>
                      <td className="mono">{hex(p.addr)}</td>
                      <td className="num mono">#{p.pinId}</td>
                      <td>
                        <PfnPair pinned={p.pinnedPfn} current={p.currentPfn} />
                      </td>
                      <td className="num mono">{p.anomalies || <span className="faint">·</span>}</td>
                      <td>
                        <SrcLink href="/timeline" params={{ pid: p.pid, addr: hex(p.addr) }} onClick={(e) => e.stopPropagation()}>
                          timeline
                        </SrcLink>
                      </td>
                    </tr>
                  );
                })}
              </tbody>
            </table>
          ) : (
            <div className="empty">{pages.error ?? (pages.data ? 'no pinned pages recorded' : 'loading…')}</div>
          )}
        </div>
      </section>
    </div>
  );
}
