'use client';
// One pin's pages as runs (GET /api/pins/:id/runs), a page of runs at a time: a contiguous 64 GiB VFIO map is a
// handful of rows, a fragmented one is paged through, never rendered whole. Per run: its first page's address,
// pages, the pinned pfn range against the pfn range the PTEs map now, and what that means (same page /
// diverged / not present / moved by mremap), each linked to its first page's timeline.
import { useState } from 'react';
import { PAGE_SIZE } from '../../../schema/kernel.ts';
import { pinPageAddr, runState, type PinRun } from '../../../schema/pin-runs.ts';
import type { PinSummary } from '../../../schema/pins.ts';
import type { PinRunsPage } from '../../../schema/stored.ts';
import { bytes, hex } from '../../components/format.ts';
import { SrcLink, useSrc, withSrc } from '../../components/src.tsx';
import { useJson } from '../../components/useJson.ts';

/** Runs per page of the table. */
const RUNS_PER_PAGE = 100;

function pfnRange(first: number | null, count: number): string {
  if (first === null) return '—';
  return count === 1 ? hex(first) : `${hex(first)}–${hex(first + count - 1)}`;
}

/** What the run's pages show, in the words of the table. */
function RunState({ run }: { run: PinRun }) {
  const s = runState(run);
  const label = s === 'same' ? 'same page' : s === 'diverged' ? 'diverged' : s === 'not-present' ? 'not present' : 'pinned pfn unknown';
  const cls = s === 'same' ? 'pfn-same' : s === 'diverged' ? 'pfn-moved' : 'faint';
  return (
    <span className="mono" data-run-state={s}>
      <span className={cls}>{label}</span>
      {run.mappedAddr !== undefined ? <span className="tag warn"> moved to {hex(run.mappedAddr)}</span> : null}
      {run.snapshotLate ? (
        <span className="tag warn" title="the pinned pfn was read after an event that may already have moved the page">
          {' '}
          late snapshot
        </span>
      ) : null}
    </span>
  );
}

export function PinRuns({ pin }: { pin: PinSummary }) {
  const src = useSrc();
  const [offset, setOffset] = useState(0);
  const url = withSrc(`/api/pins/${pin.id}/runs?offset=${offset}&limit=${RUNS_PER_PAGE}`, src);
  const page = useJson<PinRunsPage>(url, pin.releasedNs === null ? 2000 : 0);
  if (!page.data) return <div className="empty">{page.error ?? 'loading runs…'}</div>;
  const { runs, totalRuns } = page.data;
  const last = Math.min(offset + runs.length, totalRuns);
  const pager =
    totalRuns > RUNS_PER_PAGE ? (
      <span data-testid="pin-runs-pager">
        <button type="button" disabled={offset === 0} onClick={() => setOffset(Math.max(0, offset - RUNS_PER_PAGE))}>
          ← previous
        </button>{' '}
        <button type="button" disabled={last >= totalRuns} onClick={() => setOffset(offset + RUNS_PER_PAGE)}>
          next →
        </button>
      </span>
    ) : null;
  return (
    <div data-testid="pin-runs" data-pin-id={pin.id}>
      <div className="muted" style={{ fontSize: 12, padding: '4px 0' }}>
        {pin.pageCount.toLocaleString()} pages in {totalRuns.toLocaleString()} run{totalRuns === 1 ? '' : 's'} of physically contiguous pages
        {totalRuns > runs.length ? ` · runs ${(offset + 1).toLocaleString()}–${last.toLocaleString()}` : ''} {pager}
      </div>
      <table className="t" style={{ maxWidth: 1100 }}>
        <thead>
          <tr>
            <th className="num">page</th>
            <th>address</th>
            <th className="num">pages</th>
            <th>pfn pinned</th>
            <th>pfn PTE now</th>
            <th>state</th>
            <th />
          </tr>
        </thead>
        <tbody>
          {runs.map((r) => {
            const addr = pinPageAddr(pin.addr, r.page);
            return (
              <tr key={r.page} data-run-page={r.page}>
                <td className="num mono faint">{r.page}</td>
                <td className="mono">{hex(addr)}</td>
                <td className="num mono">
                  {r.count.toLocaleString()} <span className="faint">{bytes(r.count * PAGE_SIZE)}</span>
                </td>
                <td className="mono">{pfnRange(r.pinnedPfn, r.count)}</td>
                <td className="mono">{r.currentPfn === null ? <span className="faint">not present</span> : pfnRange(r.currentPfn, r.count)}</td>
                <td>
                  <RunState run={r} />
                </td>
                <td>
                  <SrcLink href="/timeline" params={{ pid: pin.pid, addr: hex(addr) }}>
                    timeline →
                  </SrcLink>
                </td>
              </tr>
            );
          })}
        </tbody>
      </table>
    </div>
  );
}
