// Whether this machine has the device a scenario needs (catalog `needs`), so the live tests can say exactly
// why a device scenario cannot run here instead of failing or skipping silently.
import { existsSync, readFileSync, readdirSync, readlinkSync } from 'node:fs';
import type { ScenarioSpec } from './spec.ts';

const PCI = '/sys/bus/pci/devices';

/** PCI address of QEMU's edu device (1234:11e8) bound to vfio-pci, or null. */
export function findVfioEdu(): string | null {
  if (!existsSync(PCI)) return null;
  for (const d of readdirSync(PCI)) {
    try {
      const id = `${readFileSync(`${PCI}/${d}/vendor`, 'utf8').trim()}:${readFileSync(`${PCI}/${d}/device`, 'utf8').trim()}`;
      if (id === '0x1234:0x11e8' && readlinkSync(`${PCI}/${d}/driver`).endsWith('/vfio-pci')) return d;
    } catch {
      // no driver link: not bound
    }
  }
  return null;
}

/** Why `spec` cannot run on this machine (null: it can). */
export function missingDevice(spec: Pick<ScenarioSpec, 'needs'>): string | null {
  switch (spec.needs) {
    case undefined:
      return null;
    case 'vfio-edu':
      return findVfioEdu() ? null : 'no edu PCI device (1234:11e8) bound to vfio-pci behind an IOMMU: judged in the QEMU guests of `npm run test:kernels` (docs/vfio-rdma.md)';
    case 'rdma-rxe':
      return existsSync('/sys/class/infiniband') && readdirSync('/sys/class/infiniband').length > 0 ? null : 'no RDMA device (rdma_rxe): judged in the QEMU guests of `npm run test:kernels` (docs/vfio-rdma.md)';
  }
}
