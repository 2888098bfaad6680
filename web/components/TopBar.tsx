'use client';
// The frame's top bar: navigation between the features, which source is shown (LIVE / REPLAY file), the
// connection state and the traced host.
import { usePathname } from 'next/navigation';
import { useLive } from './live/LiveProvider.tsx';
import { SrcLink } from './src.tsx';
import { useJson } from './useJson.ts';

const NAV = [
  { href: '/', label: 'Overview' },
  { href: '/anomalies', label: 'Anomalies' },
  { href: '/pins', label: 'DMA buffers' },
  { href: '/timeline', label: 'Page timeline' },
  { href: '/scenarios', label: 'Scenarios' },
];

export function TopBar() {
  const path = usePathname();
  const live = useLive();
  const s = live.session;
  const src = live.source;
  const critical = live.anomalies.filter((a) => a.severity === 'critical').length;
  // The Fleet page: with --prometheus, or once Alertmanager delivered alerts here.
  const features = useJson<{ fleet: boolean; alerts: number }>('/api/features', 10_000);
  const nav = features.data?.fleet || features.data?.alerts ? [...NAV, { href: '/fleet', label: 'Fleet' }] : NAV;
  return (
    <div className="topbar">
      <span className="brand">
        pin<span>watch</span>
      </span>
      <nav className="nav">
        {nav.map((n) => {
          const active = n.href === '/' ? path === '/' : path.startsWith(n.href);
          return (
            <SrcLink key={n.href} href={n.href} className={active ? 'active' : ''}>
              {n.label}
              {n.href === '/anomalies' && live.anomalies.length > 0 ? (
                <span className="faint">
                  {' '}
                  {live.anomalies.length}
                  {critical ? <span style={{ color: 'var(--crit)' }}> ({critical} crit)</span> : null}
                </span>
              ) : null}
            </SrcLink>
          );
        })}
      </nav>
      <span className="spacer" />
      {src ? (
        <span className={`srcbadge ${src.kind}`} title={src.file ?? ''} data-source-kind={src.kind}>
          {src.kind === 'replay' ? `REPLAY ${src.name}` : live.status?.level === 'error' ? 'LIVE · no capture' : `LIVE ${s?.mode ?? ''}`}
        </span>
      ) : null}
      {s ? (
        <span className="hostline" title={`bpftrace ${s.bpftraceVersion}`}>
          {s.host} · {s.kernel}
        </span>
      ) : null}
      <span className="conn" data-connected={live.connected ? 'yes' : 'no'}>
        <span className={`dot ${live.connected ? 'on' : live.everConnected ? 'off' : ''}`} />
        {live.connected ? 'connected' : live.everConnected ? 'reconnecting' : 'connecting'}
      </span>
    </div>
  );
}
