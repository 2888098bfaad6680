'use client';
// Holds the one socket.io connection of a page load for the source in ?src=, and hands its snapshot to any
// component through useLive(). Switching source (another ?src=) closes the old connection.
import { createContext, useContext, useEffect, useState, useSyncExternalStore, type ReactNode } from 'react';
import { EMPTY_SNAPSHOT, LiveStore, type LiveSnapshot } from './store.ts';
import { useSrc } from '../src.tsx';

const LiveContext = createContext<LiveStore | null>(null);

export function LiveProvider({ children }: { children: ReactNode }) {
  const src = useSrc();
  const [store, setStore] = useState<LiveStore | null>(null);
  useEffect(() => {
    const s = new LiveStore(src);
    setStore(s);
    return () => s.close();
  }, [src]);
  return <LiveContext.Provider value={store}>{children}</LiveContext.Provider>;
}

const noopSubscribe = () => () => {};
const empty = () => EMPTY_SNAPSHOT;

export function useLive(): LiveSnapshot {
  const store = useContext(LiveContext);
  return useSyncExternalStore(store?.subscribe ?? noopSubscribe, store?.getSnapshot ?? empty, empty);
}

export function useLiveStore(): LiveStore | null {
  return useContext(LiveContext);
}

/** True when the page shows the live collector (not a replayed recording). */
export function useIsLive(): boolean {
  return useLive().source?.kind === 'live';
}
