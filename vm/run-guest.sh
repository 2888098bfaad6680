#!/bin/bash
# Boot a Debian kernel under QEMU (TCG, 2 vCPUs) with the host root shared read-only and run one
# command in it; the guest's /tmp/out is OUTDIR on the host.
#   vm/run-guest.sh [-z ZRAM_MIB] [-m MEM_MIB] [-t TIMEOUT_S] [-D] KERNEL_SERIES OUTDIR -- command...
#   KERNEL_SERIES: 5.10 (bullseye) | 6.1 | 6.12 (bookworm)
#   -D: the DMA-device machine: q35 with an emulated VT-d IOMMU and QEMU's `edu` PCI device (a small DMA
#       engine), `intel_iommu=on`; the guest loads vfio-pci/vfio_iommu_type1/rdma_rxe from the kernel
#       package and binds edu to vfio-pci (guest-init.sh). Facts in OUTDIR/devices.txt.
# Exit code: the command's (from OUTDIR/rc), 124 on timeout, 125 when the guest never ran it.
# OUTDIR gets run.sh, run.log (command output), console.log (serial console), boot-times, rc.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
zram=""; mem=2048; timeout=600; devices=0
while getopts "z:m:t:D" o; do case $o in z) zram=$OPTARG;; m) mem=$OPTARG;; t) timeout=$OPTARG;; D) devices=1;; *) exit 2;; esac; done
shift $((OPTIND-1))
series=$1; outdir=$2; shift 2; [ "${1:-}" = "--" ] && shift
case $series in 5.10) suite=bullseye;; 6.1|6.12) suite=bookworm;; *) echo "unknown kernel series $series" >&2; exit 2;; esac
"$here/setup-host.sh"
kdir=$("$here/fetch-kernel.sh" "$suite" "$series")
initrd=$("$here/build-initramfs.sh" "$kdir")
mkdir -p "$outdir"; outdir=$(cd "$outdir" && pwd)
rm -f "$outdir/rc" "$outdir/run.log" "$outdir/boot-times" "$outdir/devices.txt"
# The command runs in this directory, shared on its own (tag repo): the guest puts fresh tmpfs on /tmp, /root,
# /run and /var/tmp, which would hide a checkout living there (CI clones into /tmp).
repo=$(pwd)
case "$repo" in *[[:space:]]*) echo "run-guest: the working directory must not contain spaces: $repo" >&2; exit 2;; esac
{ echo "#!/bin/bash"; echo "cd $repo"; printf '%q ' "$@"; echo; } > "$outdir/run.sh"
append="console=ttyS0 panic=-1 mitigations=off quiet loglevel=4 transparent_hugepage=madvise pw.repo=$repo"
[ -n "$zram" ] && append="$append pw.zram=$zram"
machine=(-machine pc)
if [ "$devices" = 1 ]; then
  # split irqchip: intel-iommu's interrupt remapping needs it; caching-mode: a nested vfio-pci (QEMU in the
  # guest) must see every IOTLB change; edu sits in its own IOMMU group.
  machine=(-machine q35,kernel-irqchip=split -device intel-iommu,intremap=on,caching-mode=on -device edu)
  append="$append intel_iommu=on pw.devices=1"
fi
start=$(date +%s.%N)
set +e
timeout --foreground -k 5 "$timeout" qemu-system-x86_64 -accel tcg,thread=multi -cpu max -smp 2 -m "$mem" "${machine[@]}" \
  -nographic -no-reboot -serial "file:$outdir/console.log" -monitor none \
  -kernel "$kdir/vmlinuz" -initrd "$initrd" -append "$append" \
  -virtfs local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap \
  -virtfs local,path="$outdir",mount_tag=out,security_model=none \
  -virtfs local,path="$repo",mount_tag=repo,security_model=none,readonly=on,multidevs=remap \
  -nic none </dev/null >/dev/null 2>"$outdir/qemu.stderr"
qrc=$?
set -e
end=$(date +%s.%N)
echo "run-guest: kernel $(cat "$kdir/release") wall $(echo "$end - $start" | bc 2>/dev/null || echo ?)s" >&2
[ $qrc -eq 124 ] && { echo "run-guest: timeout after ${timeout}s" >&2; exit 124; }
[ -f "$outdir/rc" ] || { echo "run-guest: guest did not run the command (see $outdir/console.log)" >&2; exit 125; }
exit "$(cat "$outdir/rc")"
