#!/bin/bash
# Runs INSIDE a test guest (vm/run-guest.sh ... -- bash test/kernels/guest-run.sh), cwd = repo root.
# Prepares the kprobe set for this kernel (calibration, selection, specialisation), starts ONE bpftrace
# on the combined usable scripts, runs the workloads, stops bpftrace and leaves everything in /tmp/out:
#   prepare.json, doctor.txt, scan-result-format.txt, scripts/*.bt + combined.bpf, raw/combined.out|.err, kprobes-list,
#   wl-<workload>.txt, timings
# Phase 2 (unless PW_RECORD=0): the product itself, `pinwatch record --mode kprobe` as
# test/kernels/record-kprobe.ts (LiveSession with the prepared kprobe set), around every catalog
# scenario, prebuilt by the host test into /tmp/out/scen and listed in /tmp/out/scenarios.list
# ("NAME BINARY" lines; PW_SCENARIOS="a b" picks some), then the workload's `collapse` so every kernel
# gives the product a collapse_file (5.10 has no MADV_COLLAPSE: khugepaged does it):
#   pinwatch.db (copied from tmpfs after the stop), record.log, sc-<name>.txt, wl-record-collapse.txt,
#   rdma.txt (soft-RoCE setup), nested-qemu.txt/.log (a nested TCG qemu with edu passed through)
set -u
OUT=/tmp/out
# the host test copies the static workload binary (test/kernels/workload.c) into the output share
WL=$OUT/pw-workload
mkdir -p $OUT/raw $OUT/scripts
t0=$(date +%s.%N)
# Old kernels have no MADV_COLLAPSE: let khugepaged collapse shmem quickly instead.
T=/sys/kernel/mm/transparent_hugepage
echo advise > $T/shmem_enabled 2>/dev/null
echo 50 > $T/khugepaged/scan_sleep_millisecs 2>/dev/null
echo 50 > $T/khugepaged/alloc_sleep_millisecs 2>/dev/null
echo 4096 > $T/khugepaged/pages_to_scan 2>/dev/null


node --import tsx collector/kprobe/cli.ts prepare $OUT/scripts > $OUT/prepare.json 2> $OUT/prepare.err || { echo "prepare failed"; cat $OUT/prepare.err; exit 1; }
cp $OUT/scripts/doctor.txt $OUT/doctor.txt
# khugepaged's result numbering on this kernel (it differs between kernels; schema/kernel.ts scanResultNames)
grep '^print fmt' /sys/kernel/tracing/events/huge_memory/mm_khugepaged_scan_pmd/format > $OUT/scan-result-format.txt 2>/dev/null
t1=$(date +%s.%N)
# One bpftrace for the whole set (combined.bpf): bpftrace start-up (BTF, clang, LLVM) takes tens of
# seconds per process under TCG, so one process per script would take minutes.
# BPFTRACE_BTF: bpftrace 0.17's feature probe says "btf: no" on 5.10 (seen) and then resolves no
# struct type; naming the file makes it use the kernel's BTF anyway.
# Output goes to tmpfs and is copied at the end: writing it to the 9p share would itself GUP-pin
# bpftrace's buffers (virtio-9p zero copy) and feed back into the gup/unpin probes.
mkdir -p /tmp/raw
BPFTRACE_BTF=/sys/kernel/btf/vmlinux BPFTRACE_PERF_RB_PAGES=1024 BPFTRACE_STRLEN=64 bpftrace -q -B line $OUT/scripts/combined.bpf > /tmp/raw/combined.out 2> /tmp/raw/combined.err &
bt=$!
# Wait until every kprobe is registered (bpftrace attaches kprobes last; a BEGIN marker would fire
# before them), or bpftrace died, or 600 s.
want=$(node -e 'const p=require(process.argv[1]); let n=0; for (const s of p.specs) n+=s.probes.filter(x=>/^k(ret)?probe:/.test(x)).length; console.log(n)' $OUT/prepare.json)
have=0
for i in $(seq 1 600); do
  have=$(cat /sys/kernel/debug/kprobes/list 2>/dev/null | grep -c .)
  [ "$have" -ge "$want" ] && break
  kill -0 $bt 2>/dev/null || break
  sleep 1
done
echo "kprobes registered: $have of $want"
cp /sys/kernel/debug/kprobes/list $OUT/kprobes-list 2>/dev/null
t2=$(date +%s.%N)
for w in vmsplice-pageout iouring-pin thp-reuse thp-pmd-reuse collapse kvm-notifier; do
  "$WL" $w > $OUT/wl-$w.txt 2>&1
done
sleep 1
t3=$(date +%s.%N)
kill -INT $bt 2>/dev/null
wait $bt
cp /tmp/raw/* $OUT/raw/
echo "prepare $(echo "$t1 - $t0" | bc) attach $(echo "$t2 - $t1" | bc) workloads $(echo "$t3 - $t2" | bc)" > $OUT/timings

if [ "${PW_RECORD:-1}" = 1 ]; then
  # uring-file-shared needs a regular file on a block filesystem (the guest's /var/tmp is tmpfs): ext4 on
  # a second zram disk (ext4 and zram come from the initramfs)
  fsdir=/tmp/pw-ext4
  zid=$(cat /sys/class/zram-control/hot_add 2>/dev/null)
  if [ -n "$zid" ] && echo 64M > /sys/block/zram$zid/disksize && mkfs.ext4 -q /dev/zram$zid && mkdir -p $fsdir && mount -t ext4 /dev/zram$zid $fsdir; then
    echo "ext4 on /dev/zram$zid at $fsdir" > $OUT/fs.txt
  else
    echo "no ext4 for uring-file-shared (zram $zid)" > $OUT/fs.txt
  fi
  # soft-RoCE for the rdma-* scenarios: rxe on a dummy netdev (rdma_rxe, dummy from the initramfs); both QPs
  # live on rxe0, so traffic loops back inside rxe. 5.10 also takes the older module parameter.
  if ip link add pw-rdma0 type dummy && ip addr add 10.99.0.1/24 dev pw-rdma0 && ip link set pw-rdma0 up &&
     { rdma link add rxe0 type rxe netdev pw-rdma0 || echo pw-rdma0 > /sys/module/rdma_rxe/parameters/add; }; then
    rdma link > $OUT/rdma.txt 2>&1
  else
    echo "no rxe device" > $OUT/rdma.txt
  fi
  r0=$(date +%s.%N)
  # SQLite WAL wants shared mmap: keep the database on tmpfs, copy it out after the stop
  node --import tsx test/kernels/record-kprobe.ts /tmp/pinwatch.db > $OUT/record.log 2>&1 &
  rec=$!
  for i in $(seq 1 900); do
    grep -q '^recording' $OUT/record.log && break
    kill -0 $rec 2>/dev/null || break
    sleep 1
  done
  r1=$(date +%s.%N)
  if grep -q '^recording' $OUT/record.log; then
    # the binaries directly, not `pinwatch scenario NAME` (which only builds and execs them): a node
    # start-up costs ~20 s per scenario under TCG
    while read -r name bin; do
      case " ${PW_SCENARIOS:-$name} " in *" $name "*) ;; *) continue;; esac
      ts=$(date +%s.%N)
      PINWATCH_FILE_DIR=$fsdir "$OUT/$bin" < /dev/null > $OUT/sc-$name.txt 2>&1
      echo "rc=$?" >> $OUT/sc-$name.txt
      echo "scenario $name $(echo "$(date +%s.%N) - $ts" | bc)" >> $OUT/timings
    done < $OUT/scenarios.list
    # nested QEMU (issue 9): a TCG qemu, no guest OS (-S), edu passed through with vfio-pci. It maps its 32 MiB of
    # RAM and the BIOS for DMA (VFIO_IOMMU_MAP_DMA per region), and at the machine reset maps the RAM again around
    # the ROM aliases and loads the BIOS into it. QMP on a pipe: QEMU answers qmp_capabilities from its main loop,
    # i.e. once all that is done (seconds under TCG, over 8 s on a loaded host, where a fixed sleep stopped it
    # before the reset). Then 4 s running, VmLck read, SIGTERM: a clean exit.
    bdf=$(sed -n 's/.*edu_bdf=\([^ ]*\).*/\1/p' $OUT/devices.txt)
    ts=$(date +%s.%N)
    coproc NQ { exec qemu-system-x86_64 -accel tcg -machine q35 -m 32 -display none -nodefaults -S -monitor none -serial none \
      -qmp stdio -device vfio-pci,host=$bdf 2> $OUT/nested-qemu.log; }
    q=$NQ_PID
    echo '{"execute":"qmp_capabilities"}' >&${NQ[1]}
    ready=0
    while read -r -t 300 line <&${NQ[0]}; do case $line in *'"return"'*) ready=1; break;; esac; done
    sleep 4
    # uptime: when VmLck was read (CLOCK_BOOTTIME = the events' CLOCK_MONOTONIC here: the guest never suspends)
    { echo "pid=$q"; echo "ready=$ready"; grep '^VmLck' /proc/$q/status | tr -d ' \t' | tr : =; echo "uptime_s=$(cut -d' ' -f1 /proc/uptime)"; } > $OUT/nested-qemu.txt
    kill -TERM $q
    wait $q
    echo "exit=$?" >> $OUT/nested-qemu.txt
    # The recorder lags the kernel under TCG by seconds (the reset's 16k one-page GUP and unpin lines on 5.10 wait in
    # the 4 MiB perf buffers): stopping it now cuts off QEMU's reset maps. Wait until the events up to QEMU's exit are
    # all stored: their count unchanged for 5 s (at most 180 s).
    tq=$(awk '{printf "%.0f", $1 * 1e9}' /proc/uptime)
    last=-1; same=0
    for i in $(seq 1 360); do
      sleep 0.5
      n=$(sqlite3 /tmp/pinwatch.db "SELECT count(*) FROM events WHERE ts_ns <= $tq" 2>/dev/null || echo -1)
      if [ "$n" = "$last" ]; then same=$((same + 1)); else same=0; fi
      last=$n
      [ $same -ge 10 ] && break
    done
    echo "drained_events=$last" >> $OUT/nested-qemu.txt
    echo "nested-qemu $(echo "$(date +%s.%N) - $ts" | bc)" >> $OUT/timings
    ts=$(date +%s.%N)
    "$WL" collapse > $OUT/wl-record-collapse.txt 2>&1
    echo "record-collapse $(echo "$(date +%s.%N) - $ts" | bc)" >> $OUT/timings
    sleep 2
  fi
  r2=$(date +%s.%N)
  kill -INT $rec 2>/dev/null
  wait $rec
  cp /tmp/pinwatch.db $OUT/pinwatch.db 2>/dev/null
  echo "record-start $(echo "$r1 - $r0" | bc) scenarios $(echo "$r2 - $r1" | bc) stop $(echo "$(date +%s.%N) - $r2" | bc)" >> $OUT/timings
fi
echo "guest-run done: $(ls $OUT/raw | wc -l) raw files"
