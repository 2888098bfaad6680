'use client';
// Fetches a JSON API of the dashboard's server (web/server/api.ts), optionally re-fetching on an interval
// (live pages) and on demand. Errors carry the server's message.
import { useCallback, useEffect, useRef, useState } from 'react';

export interface JsonState<T> {
  data: T | null;
  error: string | null;
  loading: boolean;
  reload: () => void;
}

export async function fetchJson<T>(url: string, init?: RequestInit): Promise<T> {
  const res = await fetch(url, { cache: 'no-store', ...init });
  const text = await res.text();
  let body: unknown = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    throw new Error(`${res.status} ${res.statusText}: not JSON`);
  }
  if (!res.ok) throw new Error((body as { error?: string } | null)?.error ?? `${res.status} ${res.statusText}`);
  return body as T;
}

export function useJson<T>(url: string | null, refreshMs = 0): JsonState<T> {
  const [data, setData] = useState<T | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [loading, setLoading] = useState(false);
  const [tick, setTick] = useState(0);
  const urlRef = useRef(url);
  urlRef.current = url;

  useEffect(() => {
    if (!url) return;
    let cancelled = false;
    setLoading(true);
    fetchJson<T>(url).then(
      (d) => {
        if (cancelled) return;
        setData(d);
        setError(null);
        setLoading(false);
      },
      (e: Error) => {
        if (cancelled) return;
        setError(e.message);
        setLoading(false);
      },
    );
    return () => {
      cancelled = true;
    };
  }, [url, tick]);

  useEffect(() => {
    if (!url || refreshMs <= 0) return;
    const t = setInterval(() => setTick((n) => n + 1), refreshMs);
    return () => clearInterval(t);
  }, [url, refreshMs]);

  useEffect(() => {
    // A new URL means new data: do not show the previous one meanwhile.
    setData(null);
    setError(null);
  }, [url]);

  const reload = useCallback(() => setTick((n) => n + 1), []);
  return { data, error, loading, reload };
}
