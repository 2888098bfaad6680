'use client';
// The pins registry as a sortable table: owner, source, range, pages, flags, age and state (intact / zapped /
// diverged / released). A row opens its pages as runs (PinRuns.tsx): pinned pfns against the pfns the PTEs map
// now, each run linked to its timeline.
import { Fragment, useEffect, useState } from 'react';
import type { PinSummary } from '../../../schema/pins.ts';
import { State } from '../../components/badges.tsx';
import { bytes, duration, hex, pinFlags } from '../../components/format.ts';
import { useLive } from '../../components/live/LiveProvider.tsx';
import { hostNowNs } from '../../components/live/store.ts';
import { bufferSets, setKeyOf } from '../../components/buffer-sets.ts';
import { PinRuns } from './PinRuns.tsx';

type SortKey = 'id' | 'owner' | 'source' | 'addr' | 'pages' | 'flags' | 'age' | 'state';
const STATE_ORDER: Record<string, number> = { diverged: 0, zapped: 1, intact: 2, released: 3 };

function ageNs(p: PinSummary, now: number | null): number {
  if (p.releasedNs !== null) return p.releasedNs - p.createdNs;
  return now === null ? 0 : now - p.createdNs;
}

export function PinsView() {
  const live = useLive();
  const isLive = live.source?.kind === 'live';
  const [sort, setSort] = useState<{ key: SortKey; desc: boolean }>({ key: 'state', desc: false });
  const [open, setOpen] = useState<number | null>(null);
  const [showReleased, setShowReleased] = useState(true);
  const [set, setSet] = useState<string | null>(null);
  const [, setTick] = useState(0);
  useEffect(() => {
    if (!isLive) return;
    const t = setInterval(() => setTick((n) => n + 1), 1000);
    return () => clearInterval(t);
  }, [isLive]);

  const now = hostNowNs(live, isLive);
  const visible = live.pins.filter((p) => showReleased || p.releasedNs === null);
  const sets = bufferSets(visible);
  const chosen = sets.find((x) => x.key === set) ?? null;
  const pins = chosen ? visible.filter((p) => setKeyOf(p) === chosen.key) : visible;
  const key = (p: PinSummary): string | number => {
    switch (sort.key) {
      case 'id':
        return p.id;
      case 'owner':
        return `${p.comm}\0${String(p.pid).padStart(10, '0')}`;
      case 'source':
        return p.source;
      case 'addr':
        return p.addr;
      case 'pages':
        return p.pageCount;
      case 'flags':
        return pinFlags(p) + p.backing;
      case 'age':
        return ageNs(p, now);
      case 'state':
        return (STATE_ORDER[p.state] ?? 9) * 1e9 + (1e9 - p.id);
    }
  };
  const sorted = [...pins].sort((a, b) => {
    const ka = key(a);
    const kb = key(b);
    const c = ka < kb ? -1 : ka > kb ? 1 : 0;
    return sort.desc ? -c : c;
  });
  const th = (k: SortKey, label: string, cls = '') => (
    <th className={`sortable ${cls}`} onClick={() => setSort((s) => ({ key: k, desc: s.key === k ? !s.desc : false }))} aria-sort={sort.key === k ? (sort.desc ? 'descending' : 'ascending') : 'none'}>
      {label}
      {sort.key === k ? (sort.desc ? ' ▾' : ' ▴') : ''}
    </th>
  );
  const liveCount = live.pins.filter((p) => p.releasedNs === null).length;

  return (
    <section className="panel" data-view="pins">
      <header>
        <h2>DMA buffers</h2>
        <span className="muted">
          {liveCount} pinned now, {live.pins.length - liveCount} released · pins freeze the page, not the mapping
        </span>
        <span className="spacer" />
        <label className="muted" style={{ fontSize: 12 }}>
          <input type="checkbox" checked={showReleased} onChange={(e) => setShowReleased(e.target.checked)} /> show released
        </label>
      </header>
      {sets.length ? (
        <div className="body flush scroll" style={{ maxHeight: 220 }}>
          <table className="t" data-testid="buffer-sets">
            <thead>
              <tr>
                <th>owner</th>
                <th>source</th>
                <th>buffer set</th>
                <th>identity</th>
                <th className="num">pins</th>
                <th className="num">pages</th>
                <th>state</th>
              </tr>
            </thead>
            <tbody>
              {sets.map((b) => (
                <tr key={b.key} className={`clickable${set === b.key ? ' selected' : ''}`} onClick={() => setSet(set === b.key ? null : b.key)} data-set={b.holder}>
                  <td className="mono">
                    {b.comm} [{b.pid}]
                  </td>
                  <td className="mono">{b.source}</td>
                  <td className="mono muted">{b.holder}</td>
                  <td className="mono faint" title={b.identities.join('\n')}>
                    {b.identities.slice(0, 3).join(', ')}
                    {b.identities.length > 3 ? ` … +${b.identities.length - 3}` : ''}
                  </td>
                  <td className="num mono">
                    {b.live}/{b.pins}
                  </td>
                  <td className="num mono">
                    {b.pages} <span className="faint">{bytes(b.bytes)}</span>
                  </td>
                  <td>
                    <State s={b.state} />
                    {b.divergedPages ? <span className="pfn-moved mono"> {b.divergedPages}p</span> : null}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      ) : null}
      <div className="body flush scroll" style={{ maxHeight: 'calc(100vh - 130px)' }}>
        {sorted.length ? (
          <table className="t" data-testid="pins-table">
            <thead>
              <tr>
                {th('id', 'pin', 'num')}
                {th('owner', 'owner')}
                {th('source', 'source')}
                <th>handle</th>
                {th('addr', 'range')}
                {th('pages', 'pages', 'num')}
                {th('flags', 'flags')}
                {th('age', isLive ? 'age' : 'held', 'num')}
                {th('state', 'state')}
              </tr>
            </thead>
            <tbody>
              {sorted.map((p) => (
                <Fragment key={p.id}>
                  <tr className={`clickable${open === p.id ? ' selected' : ''}`} onClick={() => setOpen(open === p.id ? null : p.id)} data-pin-id={p.id} data-pid={p.pid} data-state={p.state}>
                    <td className="num mono">#{p.id}</td>
                    <td className="mono">
                      {p.comm} [{p.pid}]
                    </td>
                    <td className="mono">{p.source}</td>
                    <td className="mono muted">{p.handle}</td>
                    <td className="mono">
                      {hex(p.addr)}–{hex(p.addr + p.len)} <span className="faint">{bytes(p.len)}</span>
                    </td>
                    <td className="num mono">{p.pageCount}</td>
                    <td className="mono">
                      {pinFlags(p)} <span className="faint">{p.backing}</span>
                    </td>
                    <td className="num mono">{p.releasedNs === null && now === null ? '—' : duration(ageNs(p, now))}</td>
                    <td>
                      <State s={p.state} />
                      {p.divergedPages ? <span className="pfn-moved mono"> {p.divergedPages}p</span> : null}
                    </td>
                  </tr>
                  {open === p.id ? (
                    <tr>
                      <td colSpan={9} style={{ background: 'var(--bg)' }}>
                        <PinRuns pin={p} />
                      </td>
                    </tr>
                  ) : null}
                </Fragment>
              ))}
            </tbody>
          </table>
        ) : (
          <div className="empty">{isLive ? 'no pins yet: io_uring buffer registration, VFIO_IOMMU_MAP_DMA or vmsplice will show up here' : 'no pins in this recording'}</div>
        )}
      </div>
    </section>
  );
}
