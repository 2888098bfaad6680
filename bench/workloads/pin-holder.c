/* Pin holder for overhead case (b): registers an io_uring fixed buffer (a live long-term pin in
 * another process), prints "ready" with its pid and the buffer, then sleeps until killed. With --zap it then
 * MADV_DONTNEEDs its first page and writes it (a divergence: pinwatch arms its fault watcher for that region).
 * Usage: pin-holder [--pages P] [--zap]. */
#include "pin.h"
#include <signal.h>
#include <sys/mman.h>

int main(int argc, char **argv) {
  long pages = 512; /* one 2 MiB region */
  int zap = 0;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--pages") && i + 1 < argc) pages = atol(argv[++i]);
    else if (!strcmp(argv[i], "--zap")) zap = 1;
    else { fprintf(stderr, "usage: %s [--pages P] [--zap]\n", argv[0]); return 64; }
  }
  size_t len = (size_t)pages * sysconf(_SC_PAGESIZE);
  char *buf = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (buf == MAP_FAILED) { perror("mmap"); return 2; }
  memset(buf, 7, len);
  int ring = pin_buffer(buf, len);
  if (zap) {
    madvise(buf, 4096, MADV_DONTNEED);
    buf[0] = 1;
  }
  printf("{\"workload\":\"pin-holder\",\"ready\":true,\"pid\":%d,\"addr\":%lu,\"len\":%zu,\"ring\":%d}\n",
         (int)getpid(), (unsigned long)buf, len, ring);
  fflush(stdout);
  for (;;) pause();
}
