// Guest workloads for the kprobe-mode kernel tests (test/kernels): each subcommand drives one kernel
// path the kprobe scripts must see, and prints what it observed from userspace (pagemap pfns, whether
// the pipe/buffer still shows the page the process sees) as `key=value` lines for the assertions.
//   workload vmsplice-pageout   seed 002: vmsplice (FOLL_GET) + MADV_PAGEOUT + read + write
//   workload iouring-pin        io_uring fixed buffer (FOLL_PIN|LONGTERM), MADV_DONTNEED + write, unregister
//   workload thp-reuse          THP, keep one subpage (split_huge_pmd), fork, child exits, parent writes
//   workload thp-pmd-reuse      PMD-mapped THP, fork, child exits, parent writes: do_huge_pmd_wp_page reuses
//                               the whole compound page and moves it to the parent's anon_vma (order 9)
//   workload collapse           shmem memfd THP collapse (MADV_COLLAPSE on 6.1+, khugepaged before)
//   workload kvm-notifier       an mm with a secondary MMU (KVM_CREATE_VM registers an mmu notifier), then
//                               mprotect (MMU_NOTIFY_PROTECTION_VMA) and MADV_DONTNEED (CLEAR) in it;
//                               prints kvm=absent when the guest has no /dev/kvm
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#define PG 4096UL
#ifndef MADV_PAGEOUT
#define MADV_PAGEOUT 21
#endif
#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25
#endif

static uint64_t pagemap(void *addr) {
  int fd = open("/proc/self/pagemap", O_RDONLY);
  uint64_t e = 0;
  if (fd < 0 || pread(fd, &e, 8, ((uintptr_t)addr / PG) * 8) != 8) e = 0;
  if (fd >= 0) close(fd);
  return e;
}
static void show(const char *what, void *addr) {
  uint64_t e = pagemap(addr);
  printf("%s_addr=%lu %s_present=%d %s_swapped=%d %s_pfn=%lu\n", what, (unsigned long)addr, what, (int)(e >> 63), what,
         (int)((e >> 62) & 1), what, (unsigned long)(e & ((1UL << 55) - 1)));
}

static int vmsplice_pageout(void) {
  char *p = mmap(NULL, PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  memset(p, 'A', PG);
  show("before", p);
  int fds[2];
  if (pipe(fds)) return perror("pipe"), 1;
  struct iovec iov = { p, PG };
  ssize_t n = vmsplice(fds[1], &iov, 1, 0);
  printf("vmsplice=%zd\n", n);
  if (madvise(p, PG, MADV_PAGEOUT)) perror("madvise(MADV_PAGEOUT)");
  show("paged", p);
  volatile char c = p[0];  // read fault: maps the swap-cache page back
  (void)c;
  show("read", p);
  p[0] = 'B';  // write fault: do_wp_page
  show("written", p);
  char buf[8];
  read(fds[0], buf, 1);
  printf("pipe_sees=%c process_sees=%c\n", buf[0], p[0]);
  printf("divergent=%d\n", buf[0] != p[0]);
  return 0;
}

struct io_uring_params_min { uint32_t v[30]; };
static int iouring_pin(void) {
  struct io_uring_params_min params;
  memset(&params, 0, sizeof params);
  int ring = syscall(__NR_io_uring_setup, 4, &params);
  if (ring < 0) return perror("io_uring_setup"), 1;
  size_t len = 4 * PG;
  char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  memset(p, 'A', len);
  for (int i = 0; i < 4; i++) { char w[16]; snprintf(w, sizeof w, "page%d", i); show(w, p + i * PG); }
  struct iovec iov = { p, len };
  int r = syscall(__NR_io_uring_register, ring, 0 /* IORING_REGISTER_BUFFERS */, &iov, 1);
  printf("register=%d\n", r);
  usleep(200000);
  madvise(p + PG, PG, MADV_DONTNEED);  // zap page 1 of the pinned buffer ...
  p[PG] = 'B';                          // ... and fault a new page in: divergence on every kernel
  show("after", p + PG);
  // a fork while the buffer is pinned: copy_page_range of its vma (printed for pinning processes only)
  pid_t c = fork();
  if (c == 0) _exit(0);
  waitpid(c, NULL, 0);
  printf("buf=%lu buf_len=%lu child=%d\n", (unsigned long)p, (unsigned long)len, (int)c);
  usleep(200000);
  r = syscall(__NR_io_uring_register, ring, 1 /* IORING_UNREGISTER_BUFFERS */, NULL, 0);
  printf("unregister=%d\n", r);
  close(ring);
  return 0;
}

static int thp_reuse(void) {
  size_t huge = 2UL << 20;
  char *raw = mmap(NULL, 2 * huge, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  char *p = (char *)(((uintptr_t)raw + huge - 1) & ~(huge - 1));
  madvise(p, huge, MADV_HUGEPAGE);
  memset(p, 'A', huge);
  show("thp", p);
  munmap(p + PG, huge - PG);  // keep only the first subpage mapped: split_huge_pmd
  pid_t c = fork();
  if (c == 0) _exit(0);
  waitpid(c, NULL, 0);
  p[0] = 'B';                 // write fault on the compound page's subpage: reuse or copy
  show("written", p);
  return 0;
}

static int thp_pmd_reuse(void) {
  size_t huge = 2UL << 20;
  char *raw = mmap(NULL, 2 * huge, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  char *p = (char *)(((uintptr_t)raw + huge - 1) & ~(huge - 1));
  madvise(p, huge, MADV_HUGEPAGE);
  memset(p, 'A', huge);
  show("thp", p);
  pid_t c = fork();
  if (c == 0) _exit(0);
  printf("child=%d\n", c);
  waitpid(c, NULL, 0);
  p[0] = 'B';
  show("written", p);
  return 0;
}

static int kvm_notifier(void) {
  int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
  if (kvm < 0) return printf("kvm=absent errno=%d\n", errno), 0;
  int vm = ioctl(kvm, 0xAE01 /* KVM_CREATE_VM */, 0);
  if (vm < 0) return printf("kvm=novm errno=%d\n", errno), 0;
  printf("kvm=ok\n");
  char *p = mmap(NULL, 16 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  memset(p, 'A', 16 * PG);
  printf("buf=%lu\n", (unsigned long)p);
  if (mprotect(p + 2 * PG, 2 * PG, PROT_READ)) perror("mprotect");  // PROTECTION_VMA over [2, 4)
  printf("wp_start=%lu wp_end=%lu\n", (unsigned long)(p + 2 * PG), (unsigned long)(p + 4 * PG));
  if (madvise(p + 8 * PG, PG, MADV_DONTNEED)) perror("madvise");  // CLEAR over page 8
  printf("zap_start=%lu zap_end=%lu\n", (unsigned long)(p + 8 * PG), (unsigned long)(p + 9 * PG));
  close(vm);
  close(kvm);
  return 0;
}

static int collapse(void) {
  size_t huge = 2UL << 20;
  int fd = memfd_create("pwcollapse", 0);
  if (fd < 0 || ftruncate(fd, huge)) return perror("memfd"), 1;
  char *raw = mmap(NULL, 2 * huge, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  char *hint = (char *)(((uintptr_t)raw + huge - 1) & ~(huge - 1));
  munmap(raw, 2 * huge);
  char *p = mmap(hint, huge, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, 0);
  // touch first: with MADV_HUGEPAGE already set, shmem (shmem_enabled=advise) would fault in a THP
  // directly and there would be nothing to collapse
  for (size_t o = 0; o < huge; o += PG) p[o] = 1;
  show("small", p);
  madvise(p, huge, MADV_HUGEPAGE);
  int r = madvise(p, huge, MADV_COLLAPSE);
  printf("madv_collapse=%d errno=%d\n", r, r ? errno : 0);
  if (r) {  // no MADV_COLLAPSE (pre-6.1): wait for khugepaged to collapse the range, up to PW_KHUGEPAGED_WAIT s
    // 5.10 registers an mm with khugepaged from MADV_HUGEPAGE only for an anon vma that has an anon_vma
    // (a shmem vma fails hugepage_vma_check there): give it one, so khugepaged scans this mm at all.
    char *anon = mmap(NULL, 2 * huge, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    anon[0] = 1;
    madvise(anon, 2 * huge, MADV_HUGEPAGE);
    uint64_t before = pagemap(p) & ((1UL << 55) - 1);
    int wait = getenv("PW_KHUGEPAGED_WAIT") ? atoi(getenv("PW_KHUGEPAGED_WAIT")) : 30;
    for (int i = 0; i < wait * 4 && (pagemap(p) & ((1UL << 55) - 1)) == before; i++) usleep(250000);
  }
  show("collapsed", p);
  return 0;
}

int main(int argc, char **argv) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (argc < 2) return fprintf(stderr, "usage: %s vmsplice-pageout|iouring-pin|thp-reuse|thp-pmd-reuse|collapse|kvm-notifier\n", argv[0]), 2;
  printf("workload=%s pid=%d\n", argv[1], getpid());
  if (!strcmp(argv[1], "vmsplice-pageout")) return vmsplice_pageout();
  if (!strcmp(argv[1], "iouring-pin")) return iouring_pin();
  if (!strcmp(argv[1], "thp-reuse")) return thp_reuse();
  if (!strcmp(argv[1], "thp-pmd-reuse")) return thp_pmd_reuse();
  if (!strcmp(argv[1], "collapse")) return collapse();
  if (!strcmp(argv[1], "kvm-notifier")) return kvm_notifier();
  return 2;
}
