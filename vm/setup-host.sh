#!/bin/bash
# Install what the VM harness needs on the host, from Debian's packages, when missing:
# qemu-system-x86 (TCG), kmod (depmod/modprobe --show-depends for the guest module list),
# busybox-static (the initramfs's /init userland); for the rdma-* scenarios (the guest shares this root):
# libibverbs-dev (they link -libverbs), ibverbs-providers (librxe), iproute2 (ip, rdma link add).
# Idempotent and quiet when all are present.
set -euo pipefail
need=()
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
command -v depmod >/dev/null || need+=(kmod)
[ -x /bin/busybox ] || need+=(busybox-static)
[ -e /usr/include/infiniband/verbs.h ] || need+=(libibverbs-dev)
compgen -G '/usr/lib/*/libibverbs/librxe-rdmav*.so' >/dev/null || need+=(ibverbs-providers)
command -v rdma >/dev/null || need+=(iproute2)
if [ ${#need[@]} -gt 0 ]; then
  echo "setup-host: apt-get install ${need[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq --no-install-recommends "${need[@]}" >&2 || { apt-get update -qq >&2; apt-get install -y -qq --no-install-recommends "${need[@]}" >&2; }
fi
