'use client';
// Browser notifications, one per incident (not one per anomaly): when a critical or high incident opens, and
// when one escalates to critical (the pagemap confirmation of a zap). Not for the backlog replayed on connect.
// Permission is asked from a click, as browsers require; the choice is remembered by the browser.
import { useEffect, useState } from 'react';
import type { Incident } from '../../schema/incidents.ts';
import { useLiveStore } from './live/LiveProvider.tsx';

const NOTIFY: ReadonlySet<string> = new Set(['critical', 'high']);
const SETTLE_MS = 300;

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
    // Like the webhook: wait for an incident's findings to settle, then one notification; again only on escalation.
    const latest = new Map<number, Incident>();
    const notified = new Map<number, string>();
    const timers = new Set<ReturnType<typeof setTimeout>>();
    const show = (i: Incident) => {
      if (!NOTIFY.has(i.severity) || Notification.permission !== 'granted') return;
      const was = notified.get(i.id);
      if (was === i.severity || (was !== undefined && i.severity !== 'critical')) return;
      notified.set(i.id, i.severity);
      const n = new Notification(`${i.severity.toUpperCase()}: ${i.comm}[${i.pid}]`, { body: `${i.title}\n${i.rules.join(', ')}`, tag: `pinwatch-incident-${i.id}` });
      n.onclick = () => {
        window.focus();
        window.location.assign(`/anomalies/${i.anomalySeqs[0]}${window.location.search}`);
      };
    };
    const off = store.onIncident((i) => {
      if (i.updatedWallMs < since) return;
      const settling = latest.has(i.id);
      latest.set(i.id, i);
      if (settling) return;
      if (notified.has(i.id)) return show(i);
      const t = setTimeout(() => {
        timers.delete(t);
        const settled = latest.get(i.id)!;
        latest.delete(i.id);
        show(settled);
      }, SETTLE_MS);
      timers.add(t);
    });
    return () => {
      off();
      for (const t of timers) clearTimeout(t);
    };
  }, [store]);
  return null;
}
