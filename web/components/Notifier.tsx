'use client';
// Browser notifications for critical and high anomalies as they arrive (not the backlog replayed on connect).
// Permission is asked from a click, as browsers require; the choice is remembered by the browser.
import { useEffect, useState } from 'react';
import { useLiveStore } from './live/LiveProvider.tsx';
import { hex } from './format.ts';

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
    return store.onAnomaly((a) => {
      if (!NOTIFY.has(a.severity) || a.wallMs < since || Notification.permission !== 'granted') return;
      const n = new Notification(`${a.severity.toUpperCase()}: ${a.rule}`, {
        body: `${a.comm}[${a.pid}] ${hex(a.addr)}${a.pfn !== null ? ` pfn ${hex(a.pfn)}${a.newPfn !== null ? ` → ${hex(a.newPfn)}` : ''}` : ''}\n${a.summary}`,
        tag: `pinwatch-${a.seq}`,
      });
      n.onclick = () => {
        window.focus();
        window.location.assign(`/anomalies/${a.seq}${window.location.search}`);
      };
    });
  }, [store]);
  return null;
}
