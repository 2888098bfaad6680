// longterm-pin-file-backed: a writable long-term pin on a SHARED mapping of a regular file (not shmem,
// not hugetlb) is granted (high: writeback hazard), or the kernel refuses it (info: 6.5+ doing its job,
// but the application's registration failed). The backing comes from /proc/PID/maps at registration.
import type { RuleInfo } from '../../schema/anomalies.ts';
import { errnoName } from '../../schema/kernel.ts';
import { hex, pageDown } from '../model/ranges.ts';
import { bytes, eventEvidence, pinCreatedEvidence } from './evidence.ts';
import { defineRule } from './rule.ts';

export const info: RuleInfo = {
  id: 'longterm-pin-file-backed',
  severity: 'high',
  title: 'Long-term writable pin on a file-backed mapping',
  whyItMatters:
    'A device writing into page-cache pages behind the filesystem\'s back breaks writeback: the page can be written ' +
    'to disk while DMA is still changing it (no stable pages), page_mkwrite is never called so blocks are not ' +
    'allocated, and ext4 hits BUG_ON in the writeback path (seed 003). Since 6.5 the kernel refuses such pins; a ' +
    'refusal is reported at info level because the application\'s registration then fails with EFAULT.',
  mechanism:
    'io_uring_register(IORING_REGISTER_BUFFERS) -> io_sqe_buffers_register -> io_pin_pages -> pin_user_pages_fast ' +
    '(FOLL_WRITE|FOLL_LONGTERM), VFIO_IOMMU_MAP_DMA -> vfio_pin_pages_remote, ib_umem_get. 6.5\'s ' +
    'check_vma_flags -> writable_file_mapping_allowed refuses FOLL_LONGTERM|FOLL_WRITE on VMAs that need dirty ' +
    'tracking (vma_needs_dirty_tracking: shared, file-backed, not shmem/hugetlb). Private file mappings are pinned ' +
    'through COW copies and are fine.',
  seeds: ['003'],
  modes: ['tracepoint', 'kprobe'],
};

export const rule = defineRule({
  info,
  effects: true,
  onEvent(e, ctx) {
    const reg = ctx.effects.registration;
    if (!reg || reg.cause !== e || !reg.longterm || !reg.writable) return;
    if (reg.ok) {
      for (const b of reg.buffers) {
        if (!b.pin || !b.sharedFile) continue;
        ctx.raise({
          rule: info.id,
          severity: 'high',
          pid: reg.pid,
          comm: reg.comm,
          addr: pageDown(b.addr),
          len: b.len,
          tsNs: e.tsNs,
          pinId: b.pin.id,
          summary: `${reg.source} pinned ${bytes(b.len)} of ${b.backing.slice(5)} (MAP_SHARED) long-term and writable at ${hex(b.addr)}: writeback hazard`,
          evidence: [
            ...eventEvidence(e, `${reg.source} registration granted (${b.pin.handleText})`),
            pinCreatedEvidence(b.pin),
          ],
        });
      }
      return;
    }
    // Refused: report the first file-backed buffer (the kernel stops at the first VMA it refuses).
    const b = reg.buffers.find((x) => x.sharedFile);
    if (!b) return;
    ctx.raise({
      rule: info.id,
      severity: 'info',
      pid: reg.pid,
      comm: reg.comm,
      addr: pageDown(b.addr),
      len: b.len,
      tsNs: e.tsNs,
      summary: `${reg.source} registration of ${bytes(b.len)} of ${b.backing.slice(5)} (MAP_SHARED) at ${hex(b.addr)} refused (${errnoName(reg.ret)}): the kernel will not pin page-cache pages long-term`,
      evidence: eventEvidence(e, `${reg.source} registration refused: ${errnoName(reg.ret)}; buffer ${hex(b.addr)} backed by ${b.backing}`),
    });
  },
});
