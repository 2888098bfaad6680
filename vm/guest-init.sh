#!/bin/sh
# /init of the pinwatch test guest (busybox). Loads virtio/9p/zram modules, mounts the host root
# read-only over 9p (tag hostroot) with fresh proc/sys/tracefs/tmpfs on top, mounts the per-run
# output share (tag out) at /tmp/out, the run's working directory (tag repo) at its host path,
# optionally sets up zram swap (pw.zram=<MiB> on the kernel command line), runs /tmp/out/run.sh
# chrooted into the host userland, records its exit code in /tmp/out/rc and powers off. Everything
# the run leaves in /tmp/out is visible on the host.
export PATH=/bin:/sbin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
t0=$(cut -d' ' -f1 /proc/uptime)
for m in $(cat /modules/order); do insmod /modules/$m 2>/dev/null; done
# The DMA-device machine (run-guest.sh -D, pw.devices=1): vfio/rdma modules from the kernel package, and QEMU's
# edu device (1234:11e8) bound to vfio-pci, so /dev/vfio/<group> exists. Facts for the run: /devices.txt.
if grep -q 'pw\.devices=1' /proc/cmdline; then
  for m in $(cat /modules/devices.order); do insmod /modules/$m 2>/dev/null || echo "pw-init: insmod $m failed"; done
  echo 1234 11e8 > /sys/bus/pci/drivers/vfio-pci/new_id 2>/dev/null || echo "pw-init: vfio-pci new_id failed"
  for d in /sys/bus/pci/devices/*; do
    [ "$(cat $d/vendor)" = 0x1234 ] && [ "$(cat $d/device)" = 0x11e8 ] || continue
    g=$(basename "$(readlink $d/iommu_group 2>/dev/null)")
    drv=$(basename "$(readlink $d/driver 2>/dev/null)")
    echo "edu_bdf=$(basename $d) edu_group=$g edu_driver=$drv vfio_dev=$([ -e /dev/vfio/$g ] && echo /dev/vfio/$g)" >> /devices.txt
  done
  [ -s /devices.txt ] || echo "edu_bdf= (no edu device on the PCI bus)" > /devices.txt
  echo "modules_loaded=$(cut -d' ' -f1 /proc/modules | sort | tr '\n' ,)" >> /devices.txt
  t_dev=$(cut -d' ' -f1 /proc/uptime)
  echo "devices_ready_s=$t_dev" >> /devices.txt
fi
N=/newroot
if ! mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=512000,cache=loose hostroot $N; then
  echo "pw-init: cannot mount hostroot"; poweroff -f
fi
mount -t proc proc $N/proc
mount -t sysfs sys $N/sys
mount -t devtmpfs dev $N/dev
mkdir -p /dev/pts /dev/shm 2>/dev/null
mount -t devpts devpts $N/dev/pts 2>/dev/null
mount -t tmpfs tmpfs $N/dev/shm 2>/dev/null
mount -t tracefs nodev $N/sys/kernel/tracing 2>/dev/null
mount -t debugfs nodev $N/sys/kernel/debug 2>/dev/null
for d in /tmp /run /var/tmp /root; do mount -t tmpfs -o mode=1777 tmpfs $N$d; done
# the working directory of the run (pw.repo=), shared on its own: the tmpfs above may hide it (CI clones to /tmp)
repo=$(sed -n 's/.*pw\.repo=\([^ ]*\).*/\1/p' /proc/cmdline)
if [ -n "$repo" ]; then
  mkdir -p $N$repo 2>/dev/null
  mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=512000,cache=loose repo $N$repo || echo "pw-init: cannot mount repo $repo"
fi
mkdir -p $N/tmp/out
mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000 out $N/tmp/out || echo "pw-init: cannot mount out"
zram=$(sed -n 's/.*pw\.zram=\([0-9]*\).*/\1/p' /proc/cmdline)
if [ -n "$zram" ] && [ -e /sys/block/zram0 ]; then
  echo "${zram}M" > /sys/block/zram0/disksize && mkswap /dev/zram0 >/dev/null && swapon /dev/zram0 && echo "pw-init: zram swap ${zram} MiB"
fi
t1=$(cut -d' ' -f1 /proc/uptime)
echo "pw-init: userspace at ${t0}s, host root mounted at ${t1}s, kernel $(uname -r)"
echo "$t0 $t1" > $N/tmp/out/boot-times
[ -f /devices.txt ] && cp /devices.txt $N/tmp/out/devices.txt
chroot $N /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root TERM=dumb PW_GUEST=1 \
  /bin/bash -c 'cd /tmp/out && /bin/bash /tmp/out/run.sh > /tmp/out/run.log 2>&1; echo $? > /tmp/out/rc'
echo "pw-init: run.sh exited $(cat $N/tmp/out/rc 2>/dev/null)"
sync
umount $N/tmp/out 2>/dev/null
poweroff -f
