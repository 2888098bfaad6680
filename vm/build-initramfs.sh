#!/bin/bash
# Build the guest initramfs for one unpacked kernel dir (from fetch-kernel.sh): static busybox, the
# kernel's modules for virtio/9p/zram/ext4 (dependency order from modprobe --show-depends, decompressed),
# and vm/guest-init.sh as /init. The guest's real userland is the host root shared read-only over 9p,
# so the same bpftrace/node run under every kernel. Cached: rebuilt only when guest-init.sh changes.
#   vm/build-initramfs.sh ~/.cache/pinwatch/vm/kernels/6.1.0-56-amd64   -> prints the .cpio.gz path
set -euo pipefail
kdir=$1
here=$(cd "$(dirname "$0")" && pwd)
release=$(cat "$kdir/release")
out="$kdir/initramfs.cpio.gz"
if [ -s "$out" ] && [ "$out" -nt "$here/guest-init.sh" ] && [ "$out" -nt "$0" ]; then echo "$out"; exit 0; fi
[ -f "$kdir/lib/modules/$release/modules.dep" ] || depmod -b "$kdir" "$release"
root=$(mktemp -d); trap 'rm -rf "$root"' EXIT
mkdir -p "$root"/{bin,sbin,dev,proc,sys,newroot,modules,tmp}
cp /bin/busybox "$root/bin/busybox"
for a in sh mount umount insmod mkdir cat echo sleep poweroff switch_root chroot mkswap swapon ls dmesg uname; do ln -s busybox "$root/bin/$a"; done
# Modules wanted; the ones built in (=y) on a given kernel simply do not resolve. ext4: a block filesystem
# (on a zram disk) for scenarios that need page-cache pages of a real file (uring-file-shared). kvm_amd:
# TCG's `-cpu max` emulates SVM, so the guest gets /dev/kvm: an mm with a secondary MMU (mmu notifiers).
wanted="virtio_pci 9pnet_virtio 9p zram overlay ext4 kvm_amd"
# The DMA-device machine's modules (run-guest.sh -D), loaded only there (modules/devices.order): vfio-pci +
# the type1 IOMMU backend for edu, rdma_rxe (soft-RoCE) + ib_uverbs for RDMA, crc32_generic (rxe computes its
# ICRC with the "crc32" shash; no modprobe in the guest to load it on demand), dummy for rxe's netdev.
devices="vfio-pci vfio_iommu_type1 rdma_rxe ib_uverbs crc32_generic dummy"
unpack() { # module names -> decompressed .ko files in modules/, their names (dependency order) in modules/$1
  local list=$1; shift
  : > "$root/modules/$list"
  for m in "$@"; do
    modprobe -d "$kdir" -S "$release" --show-depends "$m" 2>/dev/null | awk '$1=="insmod"{print $2}' || true
  done | awk '!seen[$0]++' | while read -r ko; do
    base=$(basename "$ko"); base=${base%.xz}; base=${base%.zst}
    grep -qx "$base" "$root/modules/order" 2>/dev/null && continue # already loaded at boot
    case "$ko" in
      *.xz) xz -dc "$ko" > "$root/modules/$base" ;;
      *.zst) zstd -qdc "$ko" > "$root/modules/$base" ;;
      *) cp "$ko" "$root/modules/$base" ;;
    esac
    echo "$base" >> "$root/modules/$list"
  done
}
unpack order $wanted
unpack devices.order $devices
cp "$here/guest-init.sh" "$root/init"; chmod +x "$root/init"
( cd "$root" && find . | busybox cpio -o -H newc 2>/dev/null | gzip -1 ) > "$out.tmp"
mv "$out.tmp" "$out"
echo "$out"
