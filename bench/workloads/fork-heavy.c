/* Fork-heavy workload for the overhead benchmark: fork N children that exit at once, with a parent
 * that has a few MiB of touched anonymous memory (so fork copies real page tables). Every fork and
 * exit is an event pinwatch traces (sched_process_fork / sched_process_exit), so this measures the
 * per-event cost of the always-on probes.
 * Usage: fork-heavy [--forks N] [--mib M]. */
#include "pin.h"
#include <sys/mman.h>
#include <sys/wait.h>

int main(int argc, char **argv) {
  long forks = 5000, mib = 8;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--forks") && i + 1 < argc) forks = atol(argv[++i]);
    else if (!strcmp(argv[i], "--mib") && i + 1 < argc) mib = atol(argv[++i]);
    else { fprintf(stderr, "usage: %s [--forks N] [--mib M]\n", argv[0]); return 64; }
  }
  size_t len = (size_t)mib << 20;
  char *buf = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (buf == MAP_FAILED) { perror("mmap"); return 2; }
  memset(buf, 1, len);
  long long t0 = monotonic_ns();
  for (long i = 0; i < forks; i++) {
    pid_t child = fork();
    if (child < 0) { perror("fork"); return 2; }
    if (child == 0) _exit(0);
    int status;
    waitpid(child, &status, 0);
  }
  long long t1 = monotonic_ns();
  printf("{\"workload\":\"fork-heavy\",\"forks\":%ld,\"mib\":%ld,\"ns\":%lld,\"cpu_ns\":%lld}\n", forks, mib, t1 - t0, cpu_ns());
  return 0;
}
