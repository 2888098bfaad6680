/* Zap/remap churn of a process that pins nothing, for the `events` benchmark: an allocator-like loop of
 * mmap (anonymous), touch, MADV_DONTNEED, mremap (grow, may move), mmap(MAP_FIXED) over the first page and
 * munmap — four zap/remap syscalls an iteration that pinwatch's scripts trace (the plain mmap is not one).
 * Paced to --rate iterations a second (0: as fast as it can) for --seconds, then prints one JSON line.
 * Usage: zap-churn [--rate N] [--seconds S] */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
  long rate = 1250;
  double seconds = 5;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--rate") && i + 1 < argc) rate = atol(argv[++i]);
    else if (!strcmp(argv[i], "--seconds") && i + 1 < argc) seconds = atof(argv[++i]);
    else { fprintf(stderr, "usage: %s [--rate N] [--seconds S]\n", argv[0]); return 64; }
  }
  long page = sysconf(_SC_PAGESIZE);
  size_t len = 16 * (size_t)page;
  double t0 = now(), end = t0 + seconds;
  long iterations = 0, syscalls = 0;
  while (now() < end) {
    char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) { perror("mmap"); return 2; }
    memset(p, 1, len);
    madvise(p, len, MADV_DONTNEED);
    char *q = mremap(p, len, 2 * len, MREMAP_MAYMOVE);
    if (q == MAP_FAILED) { perror("mremap"); return 2; }
    if (mmap(q, page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) == MAP_FAILED) { perror("mmap fixed"); return 2; }
    munmap(q, 2 * len);
    iterations++;
    syscalls += 4;
    if (rate > 0) {
      double due = t0 + (double)iterations / rate;
      double wait = due - now();
      if (wait > 0) {
        struct timespec ts = { (time_t)wait, (long)((wait - (time_t)wait) * 1e9) };
        nanosleep(&ts, NULL);
      }
    }
  }
  double took = now() - t0;
  printf("{\"pid\":%d,\"iterations\":%ld,\"zapSyscalls\":%ld,\"seconds\":%.3f,\"zapsPerSecond\":%.1f}\n", (int)getpid(), iterations, syscalls, took, syscalls / took);
  return 0;
}
