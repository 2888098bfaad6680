/* Page-cache-heavy workload for the overhead benchmark: write a file, then repeatedly drop it from the
 * page cache (fsync + POSIX_FADV_DONTNEED) and read it back, half through read(2) and half through a
 * shared mapping (file faults). Exercises page-cache insertion/eviction and file faults, not pins.
 * Usage: page-cache-heavy [--dir D] [--mib M] [--rounds R]. */
#include "pin.h"
#include <fcntl.h>
#include <sys/mman.h>

int main(int argc, char **argv) {
  const char *dir = "/var/tmp";
  long mib = 64, rounds = 8;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--dir") && i + 1 < argc) dir = argv[++i];
    else if (!strcmp(argv[i], "--mib") && i + 1 < argc) mib = atol(argv[++i]);
    else if (!strcmp(argv[i], "--rounds") && i + 1 < argc) rounds = atol(argv[++i]);
    else { fprintf(stderr, "usage: %s [--dir D] [--mib M] [--rounds R]\n", argv[0]); return 64; }
  }
  char path[4096];
  snprintf(path, sizeof path, "%s/pinwatch-bench-pc.%d", dir, (int)getpid());
  int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
  if (fd < 0) { perror("open"); return 2; }
  unlink(path); /* gone when we exit, however we exit */
  size_t len = (size_t)mib << 20;
  static char chunk[1 << 16];
  memset(chunk, 'p', sizeof chunk);
  long long t0 = monotonic_ns();
  for (size_t off = 0; off < len; off += sizeof chunk)
    if (write(fd, chunk, sizeof chunk) != (ssize_t)sizeof chunk) { perror("write"); return 2; }
  long page = sysconf(_SC_PAGESIZE);
  unsigned long sum = 0;
  for (long r = 0; r < rounds; r++) {
    fsync(fd);
    posix_fadvise(fd, 0, (off_t)len, POSIX_FADV_DONTNEED);
    if (r % 2 == 0) {
      lseek(fd, 0, SEEK_SET);
      ssize_t got;
      while ((got = read(fd, chunk, sizeof chunk)) > 0) sum += (unsigned char)chunk[got - 1];
    } else {
      char *m = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);
      if (m == MAP_FAILED) { perror("mmap"); return 2; }
      madvise(m, len, MADV_RANDOM); /* no fault-around readahead batching: one fault per page */
      for (size_t off = 0; off < len; off += (size_t)page) sum += (unsigned char)m[off];
      munmap(m, len);
    }
  }
  long long t1 = monotonic_ns();
  printf("{\"workload\":\"page-cache-heavy\",\"mib\":%ld,\"rounds\":%ld,\"sum\":%lu,\"ns\":%lld,\"cpu_ns\":%lld}\n", mib, rounds, sum, t1 - t0, cpu_ns());
  close(fd);
  return 0;
}
