// What each device scenario must have printed wherever it runs (a kernel guest of test:kernels, or a real
// host with the device): the device-side proof. Every one writes through the device (edu DMA) and reads
// the result back through the device as well as through the CPU.
import assert from 'node:assert/strict';
import { factNumber, factValue, type Fact } from '../../scenarios/index.ts';

const PAGE = 4096;
const DEVICE_BYTES = 'written-by-the-device';
const num = (f: readonly Fact[], key: string, step?: string) => factNumber(f, key, step);
const val = (f: readonly Fact[], key: string, step?: string) => factValue(f, key, step);

export const DEVICE_CHECKS: Record<string, (facts: readonly Fact[]) => void> = {
  'vfio-clean'(f) {
    assert.equal(val(f, 'device_bytes'), DEVICE_BYTES);
    assert.equal(val(f, 'process_reads'), DEVICE_BYTES, 'the process sees what edu wrote');
    assert.equal(val(f, 'device_reads'), DEVICE_BYTES, 'edu reads its write back');
    assert.equal(num(f, 'pages_moved'), 0);
  },
  'vfio-dontneed'(f) {
    const pfns = val(f, 'pfns') as number[];
    assert.equal(num(f, 'zap_addr'), num(f, 'buf') + PAGE);
    assert.equal(num(f, 'pfn_before'), pfns[1]);
    assert.notEqual(num(f, 'pfn_after'), num(f, 'pfn_before'), 'the page table maps a new page');
    assert.equal(val(f, 'present_after_zap'), false);
    assert.equal(val(f, 'process_reads'), 'b'.repeat(21), 'the process reads its own bytes: the device write is lost to it');
    assert.equal(val(f, 'device_reads'), DEVICE_BYTES, 'edu reads its write back from the old page');
  },
  'vfio-munmap'(f) {
    assert.equal(num(f, 'unmap_addr'), num(f, 'buf') + PAGE);
    assert.equal(val(f, 'present_after'), false);
    assert.equal(num(f, 'pinned_pfn'), (val(f, 'pfns') as number[])[1]);
    assert.equal(num(f, 'pinned_pfn_mapcount'), 0, 'no page table maps the pinned page');
    assert.equal(val(f, 'device_reads'), DEVICE_BYTES, 'the iova still reaches the unmapped page');
  },
  'vfio-unmap-clean'(f) {
    assert.equal(val(f, 'device_write_visible'), true);
    assert.equal(val(f, 'iova_reachable_after_unmap'), false, 'the IOMMU refuses the iova after UNMAP_DMA');
    assert.notEqual(val(f, 'device_reads_after_unmap'), DEVICE_BYTES);
  },
  'vfio-fork'(f) {
    assert.equal(num(f, 'pid', 'child'), num(f, 'child_pid'));
    assert.equal(num(f, 'pfn_after', 'after'), (val(f, 'pfns') as number[])[0], 'the parent keeps its pinned page');
    assert.equal(val(f, 'process_reads'), DEVICE_BYTES, 'the parent sees the device write');
    assert.equal(val(f, 'device_reads'), DEVICE_BYTES);
    assert.notEqual(num(f, 'child_pfn_at_fork'), (val(f, 'pfns') as number[])[0], '5.9+: the child gets a copy at fork');
    assert.equal(val(f, 'child_sees_device_write'), false, 'the child lost the device view');
  },
  'vfio-thp-munmap'(f) {
    assert.equal(val(f, 'thp'), true);
    assert.equal(num(f, 'hpfn') % 512, 0);
    assert.equal(num(f, 'unmap_addr'), num(f, 'buf') + (1 << 20));
    assert.equal(num(f, 'kept_pfn'), num(f, 'hpfn') + 1, 'the kept half maps the same pfns after the split');
    assert.equal(val(f, 'process_reads'), DEVICE_BYTES);
    assert.equal(val(f, 'device_reads'), DEVICE_BYTES, 'the unmapped half is still written and read by the device');
  },
  'rdma-clean'(f) {
    assert.equal(val(f, 'process_reads'), DEVICE_BYTES, 'the process sees the RDMA WRITE');
    assert.equal(val(f, 'device_reads'), DEVICE_BYTES, 'RDMA READ returns it');
    assert.equal(num(f, 'pages_moved'), 0);
  },
  'rdma-dontneed'(f) {
    assert.equal(num(f, 'zap_addr'), num(f, 'buf') + PAGE);
    assert.notEqual(num(f, 'pfn_after'), num(f, 'pfn_before'), 'the page table maps a new page');
    assert.equal(val(f, 'process_reads'), 'b'.repeat(21), 'the RDMA WRITE is lost to the process');
    assert.equal(val(f, 'device_reads'), DEVICE_BYTES, 'RDMA READ returns the device\'s bytes from the old page');
  },
  'rdma-dereg-clean'(f) {
    assert.equal(val(f, 'device_write_visible'), true);
    assert.equal(val(f, 'reachable_after_dereg'), false, 'the old rkey is refused after ibv_dereg_mr');
  },
  'rdma-fork'(f) {
    assert.equal(num(f, 'pfn_after', 'after'), (val(f, 'pfns') as number[])[0], 'the parent keeps its pinned page');
    assert.equal(val(f, 'process_reads'), DEVICE_BYTES);
    assert.equal(val(f, 'device_reads'), DEVICE_BYTES);
    assert.notEqual(num(f, 'child_pfn_at_fork'), (val(f, 'pfns') as number[])[0], '5.9+: the child gets a copy at fork');
    assert.equal(val(f, 'child_sees_device_write'), false, 'the child lost the device view');
  },
};
