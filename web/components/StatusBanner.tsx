'use client';
// The collector's status when it is not plain "capturing": why live capture is impossible and the fix, a
// replay's provenance, a dead bpftrace. When capture is unavailable it offers the recordings the server has.
import { useRouter } from 'next/navigation';
import { useState } from 'react';
import type { RecordingFile, SourceInfo } from '../shared/wire.ts';
import { useLive } from './live/LiveProvider.tsx';
import { withSrc } from './src.tsx';
import { fetchJson, useJson } from './useJson.ts';

export function StatusBanner() {
  const { status, source } = useLive();
  const router = useRouter();
  const [err, setErr] = useState<string | null>(null);
  const offerReplay = status?.level === 'error' && source?.kind === 'live';
  const recordings = useJson<RecordingFile[]>(offerReplay ? '/api/recordings' : null);
  if (!status || (status.level === 'ok' && source?.kind === 'live')) return null;

  const open = async (name: string) => {
    try {
      const s = await fetchJson<SourceInfo>(`/api/recordings/open?name=${encodeURIComponent(name)}`, { method: 'POST' });
      router.push(withSrc('/', s.id));
    } catch (e) {
      setErr((e as Error).message);
    }
  };

  return (
    <div className={`banner ${status.level}`} role="status" data-status-level={status.level}>
      <div className="msg">{status.message}</div>
      {status.fix ? (
        <div className="fix">
          <span className="muted">fix: </span>
          {status.fix}
        </div>
      ) : null}
      {offerReplay ? (
        <div className="actions">
          <span>Replay a recording in this browser:</span>
          {(recordings.data ?? []).slice(0, 6).map((r) => (
            <button key={r.name} onClick={() => void open(r.name)} title={`${(r.bytes / 1024).toFixed(0)} KiB`}>
              {r.name}
            </button>
          ))}
          {recordings.data && recordings.data.length === 0 ? <span className="faint">no recordings on this server</span> : null}
          {err ? <span style={{ color: 'var(--crit)' }}>{err}</span> : null}
        </div>
      ) : null}
    </div>
  );
}
