'use client';
// Export and replay: download this session's SQLite (a consistent copy, taken with SQLite's backup API) and
// open a recording — one the server has or a file from this machine — in the same pages, read-only.
import { useRouter } from 'next/navigation';
import { useRef, useState } from 'react';
import type { RecordingFile, SourceInfo } from '../../shared/wire.ts';
import { wallDateTime } from '../../components/format.ts';
import { useLive } from '../../components/live/LiveProvider.tsx';
import { useSrc, withSrc } from '../../components/src.tsx';
import { fetchJson, useJson } from '../../components/useJson.ts';

export function RecordingsPanel() {
  const src = useSrc();
  const { source } = useLive();
  const router = useRouter();
  const recordings = useJson<RecordingFile[]>('/api/recordings');
  const fileInput = useRef<HTMLInputElement>(null);
  const [busy, setBusy] = useState<string | null>(null);
  const [err, setErr] = useState<string | null>(null);

  const go = (s: SourceInfo) => router.push(withSrc('/', s.id));
  const openNamed = async (name: string) => {
    setErr(null);
    setBusy(name);
    try {
      go(await fetchJson<SourceInfo>(`/api/recordings/open?name=${encodeURIComponent(name)}`, { method: 'POST' }));
    } catch (e) {
      setErr((e as Error).message);
    } finally {
      setBusy(null);
    }
  };
  const upload = async (f: File) => {
    setErr(null);
    setBusy(f.name);
    try {
      go(await fetchJson<SourceInfo>('/api/recordings/upload', { method: 'PUT', body: f, headers: { 'x-file-name': f.name, 'content-type': 'application/vnd.sqlite3' } }));
    } catch (e) {
      setErr((e as Error).message);
    } finally {
      setBusy(null);
    }
  };

  return (
    <section className="panel" data-testid="recordings">
      <header>
        <h2>Export / replay</h2>
        <span className="spacer" />
        {source?.file ? (
          <a className="btn" href={withSrc('/api/export', src)} download>
            Download this {source.kind === 'live' ? 'session' : 'recording'} (SQLite)
          </a>
        ) : null}
        <button onClick={() => fileInput.current?.click()} disabled={busy !== null}>
          Open a recording file…
        </button>
        <input
          ref={fileInput}
          type="file"
          accept=".db,.sqlite,application/vnd.sqlite3"
          style={{ display: 'none' }}
          onChange={(e) => {
            const f = e.target.files?.[0];
            if (f) void upload(f);
            e.target.value = '';
          }}
        />
        {src !== 'main' ? (
          <button onClick={() => router.push('/')} title="back to the server's own session">
            Back to the server session
          </button>
        ) : null}
      </header>
      <div className="body flush">
        {err ? <div className="empty" style={{ color: 'var(--crit)' }}>{err}</div> : null}
        <table className="t">
          <thead>
            <tr>
              <th>recording on this server</th>
              <th className="num">size</th>
              <th>modified</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {(recordings.data ?? []).map((r) => (
              <tr key={r.name}>
                <td className="mono">{r.name}</td>
                <td className="num mono">{(r.bytes / 1024).toFixed(0)} KiB</td>
                <td className="mono muted">{wallDateTime(r.mtimeMs)}</td>
                <td>
                  <button onClick={() => void openNamed(r.name)} disabled={busy !== null || source?.name === r.name}>
                    {busy === r.name ? 'opening…' : 'replay'}
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
        {recordings.data?.length === 0 ? <div className="empty">no recordings in web/recordings or ./recordings</div> : null}
      </div>
    </section>
  );
}
