'use client';
// The bundled reproducers: pick one, run it (the server validates the name against the catalog and runs only
// that program, in a pty), read its output in the terminal and see its anomalies arrive beside it.
import { useEffect, useRef, useState } from 'react';
import type { ScenarioEntry, TermExit, TermRun } from '../../shared/wire.ts';
import { useLive, useLiveStore } from '../../components/live/LiveProvider.tsx';
import { useJson } from '../../components/useJson.ts';
import { AnomalyTable } from '../anomalies/AnomalyTable.tsx';
import { Terminal, type TerminalHandle } from './Terminal.tsx';

export function ScenariosView() {
  const live = useLive();
  const store = useLiveStore();
  const catalog = useJson<ScenarioEntry[]>('/api/scenarios');
  const [selected, setSelected] = useState<string | null>(null);
  const [run, setRun] = useState<TermRun | null>(null);
  const [exit, setExit] = useState<TermExit | null>(null);
  const [err, setErr] = useState<string | null>(null);
  const [starting, setStarting] = useState(false);
  const term = useRef<TerminalHandle>(null);
  const runId = useRef<string | null>(null);
  const early = useRef<Map<string, string[]>>(new Map());

  useEffect(() => {
    if (!selected && catalog.data?.length) setSelected(catalog.data.find((s) => s.name === 'uring-dontneed')?.name ?? catalog.data[0]!.name);
  }, [catalog.data, selected]);

  useEffect(() => {
    if (!store) return;
    const s = store.socket;
    const onData = (id: string, data: string) => {
      if (id === runId.current) term.current?.write(data);
      else {
        // Output can beat the start reply: keep it until the run id is known.
        const buf = early.current.get(id) ?? [];
        buf.push(data);
        early.current.set(id, buf);
      }
    };
    const onExit = (e: TermExit) => {
      if (e.runId !== runId.current) return;
      setExit(e);
      term.current?.write(`\r\n\x1b[2m[exited${e.exitCode !== null ? ` with status ${e.exitCode}` : ''}${e.signal ? ` on signal ${e.signal}` : ''}]\x1b[0m\r\n`);
    };
    s.on('term:data', onData);
    s.on('term:exit', onExit);
    return () => {
      s.off('term:data', onData);
      s.off('term:exit', onExit);
    };
  }, [store]);

  const running = run !== null && exit === null;
  const captureDown = live.status?.level === 'error';
  const canRun = live.source?.kind === 'live' && !captureDown && live.connected && !running && !starting && !!selected;
  const start = () => {
    if (!store || !selected) return;
    setErr(null);
    setStarting(true);
    term.current?.clear();
    const { cols, rows } = term.current?.size() ?? { cols: 120, rows: 30 };
    store.socket.emit('term:start', { name: selected, cols, rows }, (reply) => {
      setStarting(false);
      if (!reply.ok) {
        setErr(reply.error);
        return;
      }
      runId.current = reply.run.runId;
      setRun(reply.run);
      setExit(null);
      term.current?.write(`\x1b[2m$ ${reply.run.command}   # pid ${reply.run.pid}\x1b[0m\r\n`);
      for (const d of early.current.get(reply.run.runId) ?? []) term.current?.write(d);
      early.current.clear();
    });
  };

  const mine = run ? live.anomalies.filter((a) => a.pid === run.pid) : [];
  const others = run ? live.anomalies.filter((a) => a.pid !== run.pid && a.wallMs >= run.startedWallMs) : [];
  const entry = catalog.data?.find((s) => s.name === selected);
  const refuse =
    live.source?.kind === 'replay' ? 'This page shows a replayed recording: scenarios run only against the live server.' : live.status?.level === 'error' ? `Live capture is not running: ${live.status.message}` : null;

  return (
    <div className="grid scenarios" data-view="scenarios">
      <section className="panel">
          <header>
            <h2>Scenarios</h2>
            <span className="muted">scenarios/*.c only</span>
          </header>
          <div className="body">
            {refuse ? <div className="banner warning" style={{ margin: '0 0 8px' }}>{refuse}</div> : null}
            <div className="scenario-list" data-testid="scenario-list">
              {(catalog.data ?? []).map((s) => (
                <div key={s.name} className={`scenario${s.name === selected ? ' selected' : ''}`} onClick={() => setSelected(s.name)} data-scenario={s.name} style={{ cursor: 'pointer' }}>
                  <span className="name">{s.name}</span>
                  <span className="desc">
                    {s.expected.length ? (
                      s.expected.map((e) => (
                        <span key={e.rule} className={`sev ${e.severity ?? 'info'}`} style={{ marginRight: 4, textTransform: 'none' }} title={`expected: ${e.rule} (${e.severity ?? '?'})`}>
                          {e.rule}
                        </span>
                      ))
                    ) : (
                      <span className="tag ok">expected silent</span>
                    )}
                  </span>
                  {s.title && s.title !== s.name ? <span className="desc">{s.title}</span> : null}
                </div>
              ))}
              {catalog.error ? <div className="empty">scenario catalog unavailable: {catalog.error}</div> : null}
            </div>
          </div>
      </section>

        <section className="panel" data-run-pid={run?.pid ?? ''} data-run-state={running ? 'running' : exit ? 'exited' : 'idle'} data-exit-code={exit?.exitCode ?? ''}>
          <header>
            <h2>Terminal</h2>
            <span className="mono muted">{run ? `${run.name} · pid ${run.pid}` : entry ? entry.name : ''}</span>
            <span className="spacer" />
            {err ? <span style={{ color: 'var(--crit)' }}>{err}</span> : null}
            <button className="primary" onClick={start} disabled={!canRun} data-action="run-scenario">
              {starting ? 'building…' : running ? 'running…' : `Run ${selected ?? ''}`}
            </button>
            <button className="danger" onClick={() => run && store?.socket.emit('term:stop', run.runId)} disabled={!running}>
              Stop
            </button>
          </header>
          {entry ? (
            <div className="body" style={{ borderBottom: '1px solid var(--line)' }}>
              <p className="muted" style={{ fontSize: 12 }}>
                {entry.description}
              </p>
              {entry.seenOnKernel ? (
                <p className="mono faint" style={{ margin: 0 }}>
                  seen on 6.18: {entry.seenOnKernel}
                  {entry.seeds.length ? ` · seed ${entry.seeds.join(', ')}` : ''}
                </p>
              ) : null}
            </div>
          ) : null}
          <div className="body flush">
            <Terminal ref={term} onResize={(c, r) => run && running && store?.socket.emit('term:resize', run.runId, c, r)} />
          </div>
        </section>

      <div className="grid" style={{ alignContent: 'start' }}>
        <section className="panel" data-testid="run-anomalies">
          <header>
            <h2>Anomalies of this run</h2>
            <span className="muted">{run ? `pid ${run.pid}` : 'run a scenario'}</span>
            <span className="spacer" />
            <span className="mono">{mine.length}</span>
          </header>
          <div className="body flush scroll" style={{ maxHeight: 360 }}>
            {mine.length ? <AnomalyTable anomalies={mine} compact /> : <div className="empty">{run ? (running ? 'waiting for verdicts…' : 'none for this pid') : '—'}</div>}
          </div>
        </section>
        <section className="panel">
          <header>
            <h2>Other anomalies since the run started</h2>
            <span className="spacer" />
            <span className="mono">{others.length}</span>
          </header>
          <div className="body flush scroll" style={{ maxHeight: 240 }}>
            {others.length ? <AnomalyTable anomalies={others} compact /> : <div className="empty">none</div>}
          </div>
        </section>
      </div>
    </div>
  );
}
