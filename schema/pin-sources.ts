// What pinwatch can see of each pin source in each mode, and why not where it cannot: the one table behind
// `pinwatch doctor`'s "pin sources" lines and the dashboard's overview. Pure data + one function (the web
// imports it too). Facts: docs/vfio-rdma.md; caller naming: bpf/kprobe/gup.bt.
import type { PinSource } from './events.ts';

export interface PinSourceInfo {
  source: Exclude<PinSource, 'gup'>;
  label: string;
  /** Tracepoint mode: seen (with how) or not (with why). */
  tracepoint: { seen: boolean; text: string };
  /** Kprobe mode: the driver/syscall entry gup.bt names the caller from, and what that adds. */
  kprobe: { probe: string; text: string };
}

export const PIN_SOURCES: readonly PinSourceInfo[] = [
  {
    source: 'io_uring', label: 'io_uring fixed buffers',
    tracepoint: { seen: true, text: 'io_uring_register decoded at the syscall; pfns from pagemap' },
    kprobe: { probe: 'kprobe:__x64_sys_io_uring_register', text: 'exact pfns from GUP' },
  },
  {
    source: 'vmsplice', label: 'vmsplice',
    tracepoint: { seen: true, text: 'vmsplice decoded at the syscall; pfns from pagemap' },
    kprobe: { probe: 'kprobe:__x64_sys_vmsplice', text: 'exact pfns from GUP' },
  },
  {
    source: 'vfio', label: 'VFIO type1 DMA maps',
    tracepoint: { seen: true, text: 'VFIO_IOMMU_MAP_DMA/UNMAP_DMA decoded from ioctl (ioctl_dma.bt); identity container fd + iova → vaddr; pfns from pagemap' },
    kprobe: { probe: 'kprobe:vfio_pin_pages_remote', text: 'exact pfns from GUP inside MAP_DMA (needs vfio_iommu_type1 loaded before record starts)' },
  },
  {
    source: 'iommufd', label: 'iommufd IOAS maps',
    tracepoint: { seen: false, text: 'IOMMU_IOAS_MAP is not decoded: its DMA buffers are invisible in tracepoint mode' },
    kprobe: { probe: 'kprobe:iopt_map_user_pages', text: 'GUP named iommufd (needs iommufd loaded before record starts)' },
  },
  {
    source: 'rdma', label: 'RDMA memory regions',
    tracepoint: { seen: false, text: 'ibv_reg_mr travels as a uverbs write/ioctl attribute tree no tracepoint decodes: MRs are invisible in tracepoint mode' },
    kprobe: { probe: 'kprobe:ib_umem_get', text: 'GUP named rdma (needs ib_uverbs loaded before record starts)' },
  },
  {
    source: 'o_direct', label: 'O_DIRECT I/O',
    tracepoint: { seen: false, text: 'not tracked: short-term pins released within the read/write, never DMA buffers' },
    kprobe: { probe: 'kprobe:bio_iov_iter_get_pages', text: 'GUP named o_direct, short-term (no pin kept, no anomaly)' },
  },
];

export interface SourceCoverage {
  source: PinSourceInfo['source'];
  label: string;
  seen: boolean;
  detail: string;
}

/**
 * What a session sees of each source. `mode` is the session's; `kprobeProbes` (kprobe mode) the kprobe attach
 * points that attached, when known (a driver module not loaded at start leaves its caller unnamed).
 */
export function sourceCoverage(mode: string, kprobeProbes?: ReadonlySet<string>): SourceCoverage[] {
  return PIN_SOURCES.map((s) => {
    if (mode !== 'kprobe') return { source: s.source, label: s.label, seen: s.tracepoint.seen, detail: `tracepoint mode: ${s.tracepoint.text}` };
    const named = kprobeProbes === undefined || kprobeProbes.has(s.kprobe.probe);
    if (named) return { source: s.source, label: s.label, seen: true, detail: `kprobe mode: ${s.kprobe.text}` };
    return {
      source: s.source, label: s.label, seen: s.tracepoint.seen,
      detail: `${s.kprobe.probe} not attachable (module not loaded or function absent): ${s.tracepoint.seen ? 'seen as in tracepoint mode: ' + s.tracepoint.text : s.tracepoint.text}`,
    };
  });
}
