// Small shared display pieces: severity badge, pin state, hex numbers in monospace.
import type { Severity } from '../../schema/anomalies.ts';
import type { PinState } from '../../schema/pins.ts';
import { hex } from './format.ts';

export function Sev({ s }: { s: Severity }) {
  return <span className={`sev ${s}`}>{s}</span>;
}

export function State({ s }: { s: PinState }) {
  return <span className={`state ${s}`}>{s}</span>;
}

export function Hex({ n, className }: { n: number | null | undefined; className?: string }) {
  return <span className={`mono ${className ?? ''}`}>{hex(n)}</span>;
}

/** pinned → current pfn, red when the page table maps another page than the device holds. */
export function PfnPair({ pinned, current }: { pinned: number | null; current: number | null }) {
  if (pinned === null && current === null) return <span className="faint">—</span>;
  const moved = pinned !== null && current !== null && pinned !== current;
  return (
    <span className="mono">
      <span className={moved ? '' : 'pfn-same'}>{hex(pinned)}</span>
      {current !== pinned ? (
        <>
          {' → '}
          <span className={moved ? 'pfn-moved' : 'faint'}>{current === null ? 'not present' : hex(current)}</span>
        </>
      ) : null}
    </span>
  );
}
