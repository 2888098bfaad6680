'use client';
// Browser notifications, one per incident (not one per anomaly): when a critical or high incident opens, and
// when one escalates to critical (the pagemap confirmation of a zap). Not for the backlog replayed on connect.
// Permission is asked from a click, as browsers require; the choice is remembered by the browser.
import { useEffect, useState } from 'react';
import { IncidentSettler, SETTLE_MS } from '../../collector/incidents/settle.ts';
import { useLiveStore } from './live/LiveProvider.tsx';

const NOTIFY: ReadonlySet<string> = new Set(['critical', 'high']);

export function useNotifications(): { permission: NotificationPermission | 'unsupported'; request: () => void } {
  const [permission, setPermission] = useState<NotificationPermission | 'unsupported'>('default');
  useEffect(() => {
    setPermission(typeof Notification === 'undefined' ? 'unsupported' : Notification.permission);
  }, []);
  return {
    permission,
    request: () => {
      if (typeof Notification === 'undefined') return;
      void Notification.requestPermission().then(setPermission);
    },
  };
}

export function Notifier() {
  const store = useLiveStore();
  useEffect(() => {
    if (!store || typeof Notification === 'undefined') return;
    const since = Date.now() - 5_000;
    // Like the webhook: one notification once an incident's findings settled, one more if its severity rises.
    const settler = new IncidentSettler(SETTLE_MS, (i) => {
      if (!NOTIFY.has(i.severity) || Notification.permission !== 'granted') return;
      const n = new Notification(`${i.severity.toUpperCase()}: ${i.comm}[${i.pid}]`, { body: `${i.title}\n${i.rules.join(', ')}`, tag: `pinwatch-incident-${i.id}` });
      n.onclick = () => {
        window.focus();
        window.location.assign(`/anomalies/${i.anomalySeqs[0]}${window.location.search}`);
      };
    });
    const off = store.onIncident((i) => {
      if (i.updatedWallMs >= since) settler.update(i, i.closedWallMs === null ? 'updated' : 'closed');
    });
    return () => {
      off();
      settler.close();
    };
  }, [store]);
  return null;
}
