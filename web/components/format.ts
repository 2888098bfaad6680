// Formatting shared by every view: hex addresses and pfns, durations on CLOCK_MONOTONIC, and one line per
// trace event in the words a kernel engineer would use (syscall(args) = ret, fault kind, khugepaged result).
import { IORING_REGISTER, IORING_REGISTER_USE_REGISTERED_RING, MAP_FIXED, MAP_FIXED_NOREPLACE, PF_PROT, PF_USER, PF_WRITE, UFFDIO_REGISTER_MODE_MINOR, UFFDIO_REGISTER_MODE_MISSING, UFFDIO_REGISTER_MODE_WP, errnoName, madvName, scanResultName } from '../../schema/kernel.ts';
import type { EventKind } from '../../schema/events.ts';
import type { PinSummary } from '../../schema/pins.ts';

export function hex(n: number | null | undefined): string {
  if (n === null || n === undefined || !Number.isFinite(n)) return '—';
  return n < 0 ? `-0x${(-n).toString(16)}` : `0x${n.toString(16)}`;
}

export function bytes(n: number): string {
  if (n >= 1 << 30 && n % (1 << 30) === 0) return `${n / (1 << 30)} GiB`;
  if (n >= 1 << 20 && n % (1 << 20) === 0) return `${n / (1 << 20)} MiB`;
  if (n >= 1024 && n % 1024 === 0) return `${n / 1024} KiB`;
  return `${n} B`;
}

/** A duration in ns, compact: 812 ns, 3.41 µs, 12.0 ms, 4.20 s, 3m 05s, 2h 10m. */
export function duration(ns: number): string {
  const a = Math.abs(ns);
  const sign = ns < 0 ? '-' : '';
  if (a < 1e3) return `${sign}${Math.round(a)} ns`;
  if (a < 1e6) return `${sign}${(a / 1e3).toFixed(a < 1e4 ? 2 : 1)} µs`;
  if (a < 1e9) return `${sign}${(a / 1e6).toFixed(a < 1e7 ? 2 : 1)} ms`;
  if (a < 60e9) return `${sign}${(a / 1e9).toFixed(2)} s`;
  const s = Math.floor(a / 1e9);
  if (s < 3600) return `${sign}${Math.floor(s / 60)}m ${String(s % 60).padStart(2, '0')}s`;
  return `${sign}${Math.floor(s / 3600)}h ${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

export function relative(ns: number, t0: number): string {
  const d = ns - t0;
  return d >= 0 ? `+${duration(d)}` : duration(d);
}

export function wallTime(ms: number): string {
  if (!ms) return '—';
  const d = new Date(ms);
  const p = (n: number, w = 2) => String(n).padStart(w, '0');
  return `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.${p(d.getMilliseconds(), 3)}`;
}

export function wallDateTime(ms: number): string {
  if (!ms) return '—';
  const d = new Date(ms);
  return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, '0')}-${String(d.getDate()).padStart(2, '0')} ${wallTime(ms)}`;
}

const IORING_NAMES = new Map<number, string>(Object.entries(IORING_REGISTER).map(([k, v]) => [v, k === 'BUFFERS' ? 'REGISTER_BUFFERS' : k]));
export function ioringOp(opcode: number): string {
  const op = opcode & ~IORING_REGISTER_USE_REGISTERED_RING;
  return IORING_NAMES.get(op) ?? `opcode ${op}`;
}

function uffdModes(mode: number): string {
  const m: string[] = [];
  if (mode & UFFDIO_REGISTER_MODE_MISSING) m.push('MISSING');
  if (mode & UFFDIO_REGISTER_MODE_WP) m.push('WP');
  if (mode & UFFDIO_REGISTER_MODE_MINOR) m.push('MINOR');
  return m.join('|') || '0';
}

export function faultKind(errorCode: number): string {
  const w = errorCode & PF_WRITE ? 'write' : 'read';
  const p = errorCode & PF_PROT ? 'present (protection: do_wp_page)' : 'not present';
  return `${w} fault, ${p}${errorCode & PF_USER ? '' : ', kernel mode'}`;
}

function ret(r: unknown): string {
  return typeof r === 'number' ? errnoName(r) : '?';
}

function num(v: unknown): number {
  return typeof v === 'number' ? v : Number(v);
}

/** One line describing an event from its kind and payload (the stored JSON), in syscall/kernel terms. */
export function describeEvent(kind: EventKind | string, p: Record<string, unknown>): string {
  switch (kind) {
    case 'pin_iovec':
      return `${p.source} ${p.source === 'io_uring' ? ioringOp(num(p.opcode)) : 'iovec'} fd ${p.fd} [${p.index}] ${hex(num(p.addr))} len ${bytes(num(p.len))}`;
    case 'pin_result':
      return `${p.source} ${p.source === 'io_uring' ? ioringOp(num(p.opcode)) : ''} fd ${p.fd} nr ${p.nr} = ${ret(p.ret)}  mm ${p.mm}`;
    case 'vfio_dma':
      return `VFIO_IOMMU_${String(p.op).toUpperCase()}_DMA fd ${p.fd} vaddr ${hex(num(p.vaddr))} iova ${hex(num(p.iova))} size ${bytes(num(p.size))} = ${ret(p.ret)}`;
    case 'madvise':
      return `madvise(${hex(num(p.addr))}, ${num(p.len)}, MADV_${madvName(num(p.behavior)).replace(/^MADV_/, '')}) = ${ret(p.ret)}`;
    case 'munmap':
      return `munmap(${hex(num(p.addr))}, ${num(p.len)}) = ${ret(p.ret)}`;
    case 'mremap':
      return `mremap(${hex(num(p.addr))}, ${num(p.oldLen)}, ${num(p.newLen)}, 0x${num(p.flags).toString(16)}${num(p.newAddrArg) ? `, ${hex(num(p.newAddrArg))}` : ''}) = ${num(p.ret) < 0 ? ret(p.ret) : hex(num(p.ret))}`;
    case 'mmap_fixed': {
      const f = num(p.flags);
      const fixed = f & MAP_FIXED_NOREPLACE ? 'MAP_FIXED_NOREPLACE' : f & MAP_FIXED ? 'MAP_FIXED' : '';
      return `mmap(${hex(num(p.addr))}, ${num(p.len)}, prot 0x${num(p.prot).toString(16)}, flags 0x${f.toString(16)} ${fixed}, fd ${p.fd}) = ${num(p.ret) < 0 ? ret(p.ret) : hex(num(p.ret))}`;
    }
    case 'fork':
      return `fork → child ${p.childPid} (${p.childComm})${num(p.cloneFlags) >= 0 ? ` clone flags 0x${num(p.cloneFlags).toString(16)}` : ''}`;
    case 'exit':
      return 'process exit (thread group leader)';
    case 'uffd_register':
      return `UFFDIO_${String(p.op).toUpperCase()} fd ${p.fd} ${hex(num(p.addr))} len ${bytes(num(p.len))}${p.op === 'register' ? ` mode ${uffdModes(num(p.mode))}` : ''} = ${ret(p.ret)}`;
    case 'fault':
      return `${faultKind(num(p.errorCode))} at ${hex(num(p.addr))} (error_code 0x${num(p.errorCode).toString(16)}, ip ${hex(num(p.ip))})`;
    case 'collapse_file':
      return `collapse_file ${p.isShmem ? 'shmem' : 'file'} ${p.filename || ''} addr ${hex(num(p.addr))} index ${p.index} nr ${p.nr} → ${scanResultName(num(p.result))} (hpfn ${hex(num(p.hpfn))})`;
    case 'scan_file':
      return `khugepaged scan_file ${p.filename || ''} pfn ${hex(num(p.pfn))} present ${p.present} swap ${p.swap} → ${scanResultName(num(p.result))}`;
    case 'scan_pmd':
      return `khugepaged scan_pmd pfn ${hex(num(p.pfn))} referenced ${p.referenced} none_or_zero ${p.noneOrZero} unmapped ${p.unmapped} → ${scanResultName(num(p.status))}`;
    case 'collapse_isolate':
      return `collapse_huge_page_isolate pfn ${hex(num(p.pfn))} → ${scanResultName(num(p.status))}`;
    case 'ksm_merge':
      return `KSM merge pfn ${hex(num(p.pfn))} into ${hex(num(p.ksmPfn))} err ${p.err}`;
    case 'writeback':
      return `reclaim writes out pfn ${hex(num(p.pfn))} (flags 0x${num(p.reclaimFlags).toString(16)})`;
    case 'migrate_pte':
      return `${p.op === 'set' ? 'set' : 'remove'}_migration_pte ${hex(num(p.addr))} order ${p.order}`;
    case 'close':
      return `close(${p.fd})`;
    case 'gup': {
      const pfns = Array.isArray(p.pfns) ? (p.pfns as number[]) : [];
      return `${p.fn}(${hex(num(p.addr))}, ${p.nrPages} pages, gup_flags 0x${num(p.gupFlags).toString(16)}) = ${ret(p.ret)}${pfns.length ? `  pfns ${pfns.slice(0, 4).map(hex).join(' ')}${pfns.length > 4 ? ' …' : ''}` : ''}`;
    }
    case 'unpin':
      return `${p.fn} pfn ${hex(num(p.pfn))} npages ${p.npages}`;
    case 'wp_page':
      return `do_wp_page ${p.outcome} at ${hex(num(p.addr))}: pfn ${hex(num(p.oldPfn))}${p.outcome === 'copy' || p.outcome === 'unshare' ? ` → ${hex(num(p.newPfn))}` : ''}`;
    case 'unmap':
      return `try_to_unmap_one pfn ${hex(num(p.pfn))} at ${hex(num(p.addr))} mm ${p.mm}`;
    case 'mkclean':
      return `page_mkclean_one pfn ${hex(num(p.pfn))} at ${hex(num(p.addr))} mm ${p.mm}`;
    case 'split_pmd':
      return `split_huge_pmd ${hex(num(p.addr))} mm ${p.mm}`;
    case 'mmu_invalidate':
      return `mmu_notifier invalidate ${hex(num(p.start))}–${hex(num(p.end))} event ${p.event} mm ${p.mm}`;
    case 'mmu_invalidate_end':
      return `mmu_notifier invalidate end ${hex(num(p.start))}–${hex(num(p.end))} event ${p.event} mm ${p.mm}${num(p.startTsNs) > 0 ? '' : ' (start not seen)'}`;
    case 'copy_page_range':
      return `fork: copy_page_range ${hex(num(p.start))}–${hex(num(p.end))} (${p.anon ? 'anon' : 'private file'}, vm_flags 0x${num(p.vmFlags).toString(16)}) into child mm ${p.childMm}`;
    case 'anon_rmap_move':
      return `folio_move_anon_rmap pfn ${hex(num(p.pfn))} at ${hex(num(p.addr))} order ${p.order}`;
    case 'lost':
      return `${p.count} events lost (perf buffer full): verdicts here may miss context`;
    default:
      return JSON.stringify(p);
  }
}

export function pinFlags(p: Pick<PinSummary, 'writable' | 'longterm'>): string {
  return [p.writable ? 'WRITE' : 'RO', p.longterm ? 'LONGTERM' : 'SHORT'].join('|');
}

/** Address range as start–end (exclusive end), hex. */
export function range(addr: number, len: number): string {
  return `${hex(addr)}–${hex(addr + len)}`;
}
