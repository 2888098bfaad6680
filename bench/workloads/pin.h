/* Shared helper for the bench workloads: pin a buffer the way a DMA user does, through io_uring fixed
 * buffers (FOLL_WRITE | FOLL_LONGTERM), with raw syscalls so no liburing is needed. */
#ifndef PINWATCH_BENCH_PIN_H
#define PINWATCH_BENCH_PIN_H
#include <linux/io_uring.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

/* Returns the ring fd (keep it open: closing the ring drops the pin), exits on failure. */
static inline int pin_buffer(void *addr, size_t len) {
  struct io_uring_params params;
  memset(&params, 0, sizeof params);
  int ring = (int)syscall(__NR_io_uring_setup, 4, &params);
  if (ring < 0) { perror("io_uring_setup"); exit(2); }
  struct iovec iov = { .iov_base = addr, .iov_len = len };
  if (syscall(__NR_io_uring_register, ring, IORING_REGISTER_BUFFERS, &iov, 1) < 0) {
    perror("io_uring_register(BUFFERS)");
    exit(2);
  }
  return ring;
}

static inline long long monotonic_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* CPU time (user + system) of this process and its reaped children: the tracing cost that lands in the
 * workload itself (probes run in the faulting task), less sensitive to other load than wall time. */
static inline long long cpu_ns(void) {
  struct rusage self, kids;
  getrusage(RUSAGE_SELF, &self);
  getrusage(RUSAGE_CHILDREN, &kids);
  long long us = 0;
  us += (long long)self.ru_utime.tv_sec * 1000000 + self.ru_utime.tv_usec;
  us += (long long)self.ru_stime.tv_sec * 1000000 + self.ru_stime.tv_usec;
  us += (long long)kids.ru_utime.tv_sec * 1000000 + kids.ru_utime.tv_usec;
  us += (long long)kids.ru_stime.tv_sec * 1000000 + kids.ru_stime.tv_usec;
  return us * 1000;
}
#endif
