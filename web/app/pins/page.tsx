// DMA buffers (/pins): every registered range (io_uring fixed buffers, VFIO DMA maps, vmsplice, …), live.
import { PinsView } from './PinsView.tsx';

export default function PinsPage() {
  return <PinsView />;
}
