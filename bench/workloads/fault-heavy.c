/* Fault-heavy workload for the overhead benchmark: N anonymous write faults on a reused buffer
 * (write every page, MADV_DONTNEED the buffer, repeat). With --pinned the buffer is first registered as
 * an io_uring fixed buffer, so every fault lands inside a live pin (case c: each round diverges the
 * pinned pages from the page table, which is exactly what pinwatch exists to see).
 * --wait-signal: after setting up (and pinning), print {"ready":true,...} and wait for SIGUSR1 before faulting
 * (the fixture recorder uses it to let pinwatch's fault filter attach first).
 * Usage: fault-heavy [--faults N] [--pages P] [--pinned] [--wait-signal]. Prints one JSON line with its timing. */
#include "pin.h"
#include <signal.h>
#include <sys/mman.h>

int main(int argc, char **argv) {
  long faults = 1000000, pages = 16384; /* 64 MiB buffer: ~61 madvise rounds for 1M faults */
  int pinned = 0, wait_signal = 0;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--faults") && i + 1 < argc) faults = atol(argv[++i]);
    else if (!strcmp(argv[i], "--pages") && i + 1 < argc) pages = atol(argv[++i]);
    else if (!strcmp(argv[i], "--pinned")) pinned = 1;
    else if (!strcmp(argv[i], "--wait-signal")) wait_signal = 1;
    else { fprintf(stderr, "usage: %s [--faults N] [--pages P] [--pinned] [--wait-signal]\n", argv[0]); return 64; }
  }
  long page = sysconf(_SC_PAGESIZE);
  size_t len = (size_t)pages * page;
  char *buf = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (buf == MAP_FAILED) { perror("mmap"); return 2; }
  /* THP would turn 512 faults into one: keep it 4 KiB pages so the count means what it says. */
  madvise(buf, len, MADV_NOHUGEPAGE);
  int ring = -1;
  if (pinned) {
    ring = pin_buffer(buf, len); /* pins (and faults in) every page */
    /* One zap before the timed part: it arms pinwatch's fault watcher for this buffer, as the loop would. */
    madvise(buf, page, MADV_DONTNEED);
    buf[0] = 1;
  } else madvise(buf, len, MADV_DONTNEED);
  if (wait_signal) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    sigprocmask(SIG_BLOCK, &set, NULL);
    printf("{\"ready\":true,\"pid\":%d,\"addr\":%lu,\"len\":%zu}\n", (int)getpid(), (unsigned long)buf, len);
    fflush(stdout);
    int sig;
    sigwait(&set, &sig);
  }
  long long t0 = monotonic_ns();
  long done = 0, rounds = 0;
  while (done < faults) {
    if (pinned || rounds > 0) madvise(buf, len, MADV_DONTNEED);
    long n = faults - done < pages ? faults - done : pages;
    for (long p = 0; p < n; p++) buf[p * page] = (char)p;
    done += n;
    rounds++;
  }
  long long t1 = monotonic_ns();
  printf("{\"workload\":\"fault-heavy\",\"faults\":%ld,\"rounds\":%ld,\"pinned\":%d,\"ns\":%lld,\"cpu_ns\":%lld}\n", done, rounds, pinned, t1 - t0, cpu_ns());
  if (ring >= 0) close(ring);
  return 0;
}
