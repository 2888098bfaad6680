'use client';
// What this capture could not see: windows in which a bpftrace process was down (capture gaps: anomalies whose
// evidence overlaps one are low confidence; the verifier re-read every live pin after each) and pinned memory the
// kernel accounts to a process that no pin pinwatch knows explains (VmPin at discovery: "source unknown").
import type { CaptureGap, UnattributedPinned } from '../../../schema/reliability.ts';
import { PAGE_SIZE } from '../../../schema/kernel.ts';
import type { OverviewData } from '../../shared/wire.ts';
import { duration, wallDateTime } from '../../components/format.ts';

const PROCESS_LABEL: Record<CaptureGap['process'], string> = {
  main: 'main bpftrace (every traced event)',
  faults: 'fault watcher (faults in armed pinned regions)',
};

function bytes(pages: number): string {
  const b = pages * PAGE_SIZE;
  if (b >= 2 ** 30) return `${(b / 2 ** 30).toFixed(1)} GiB`;
  if (b >= 2 ** 20) return `${(b / 2 ** 20).toFixed(1)} MiB`;
  return `${(b / 1024).toFixed(0)} KiB`;
}

export function BlindSpotsPanel({ data, isLive }: { data: OverviewData | null; isLive: boolean }) {
  const gaps = data?.gaps ?? [];
  const unattributed = data?.unattributed ?? [];
  return (
    <div className="grid cols-2">
      <section className="panel" data-testid="capture-gaps">
        <header>
          <h2>Capture gaps</h2>
          <span className="spacer" />
          <span className="muted">
            {data?.gapCount ?? 0} in {isLive ? 'this file' : 'the recording'}; findings overlapping one are low confidence
          </span>
        </header>
        <div className="body flush scroll" style={{ maxHeight: 260 }}>
          {gaps.length ? (
            <table className="t">
              <thead>
                <tr>
                  <th>from</th>
                  <th className="num">lasted</th>
                  <th>process</th>
                  <th>cause</th>
                  <th className="num">events lost</th>
                </tr>
              </thead>
              <tbody>
                {gaps.map((g) => (
                  <tr key={g.id} data-gap-process={g.process} data-open={g.endNs === null ? 'yes' : 'no'}>
                    <td className="mono nowrap">{wallDateTime(g.startWallMs)}</td>
                    <td className="num mono">{g.endNs === null ? <span className="tag warn">open</span> : duration(g.endNs - g.startNs)}</td>
                    <td>{PROCESS_LABEL[g.process] ?? g.process}</td>
                    <td className="muted">{g.cause}</td>
                    <td className="num mono">{g.eventsLost === null ? <span className="faint">unknown</span> : g.eventsLost.toLocaleString('en-US')}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          ) : (
            <div className="empty">no capture gaps: every bpftrace process ran throughout</div>
          )}
        </div>
      </section>

      <section className="panel" data-testid="unattributed-pinned">
        <header>
          <h2>Pinned memory of unknown source</h2>
          <span className="spacer" />
          <span className="muted">VmPin (mm-&gt;pinned_vm) beyond the pins pinwatch can name</span>
        </header>
        <div className="body flush scroll" style={{ maxHeight: 260 }}>
          {unattributed.length ? (
            <table className="t">
              <thead>
                <tr>
                  <th>process</th>
                  <th className="num">source unknown</th>
                  <th className="num">VmPin</th>
                  <th className="num">VmLck</th>
                  <th className="num">named by pins</th>
                </tr>
              </thead>
              <tbody>
                {unattributed.map((m: UnattributedPinned) => (
                  <tr key={m.pid} data-pid={m.pid} data-unexplained-pages={m.unexplainedPages}>
                    <td className="mono">
                      {m.comm}[{m.pid}]
                    </td>
                    <td className="num mono" title={`${m.unexplainedPages} pages pinned by pid ${m.pid}, source unknown`}>
                      {m.unexplainedPages.toLocaleString('en-US')} pages ({bytes(m.unexplainedPages)})
                    </td>
                    <td className="num mono">{bytes(m.vmPinPages)}</td>
                    <td className="num mono">{bytes(m.vmLckPages)}</td>
                    <td className="num mono">{Math.max(m.explainedPages, m.livePinPages).toLocaleString('en-US')} pages</td>
                  </tr>
                ))}
              </tbody>
            </table>
          ) : (
            <div className="empty">
              {data?.discovered
                ? `the pinned memory of all ${data.discovered} process${data.discovered === 1 ? '' : 'es'} found at discovery is named by a pin (io_uring buffers from fdinfo, traced pins)`
                : 'no process held pinned or locked memory at discovery (or the recording predates discovery)'}
            </div>
          )}
          <div className="muted" style={{ padding: '6px 10px', fontSize: 12 }}>
            Read from /proc/PID/status when capture starts or restarts. VmPin counts long-term pins charged to pinned_vm (io_uring fixed buffers, RDMA
            MRs through ib_umem); VFIO type1 charges locked_vm (VmLck), which mlock shares, so VmLck alone names no pin. Pages stay here until a traced
            pin of that process covers them.
          </div>
        </div>
      </section>
    </div>
  );
}
