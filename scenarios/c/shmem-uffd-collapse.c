/* pinwatch scenario shmem-uffd-collapse: a 2 MiB-aligned shmem (memfd) range, half populated (the rest
 * are holes), registered with a userfaultfd for MISSING faults. MADV_COLLAPSE would fill the holes with
 * zeroed pages inside the new huge page, so the faults userspace waits for would never come (seed 004).
 * Since 6.4 collapse_file sees the armed userfaultfd and refuses (SCAN_EXCEED_NONE_PTE, EBUSY). After
 * UFFDIO_UNREGISTER the same MADV_COLLAPSE succeeds: the holes are filled and the range is mapped by
 * one huge page. Seen on 6.18: the refused collapse still unmaps the populated pages from the page table
 * (they stay in the page cache; the next touch maps the same pfns). MADV_COLLAPSE ignores shmem_enabled=never (only "deny" forbids it).
 *
 * Self-contained on purpose (no liburing, no shared header): it can be pasted into a bug report.
 * Build: cc -O2 -Wall -Werror -o shmem-uffd-collapse shmem-uffd-collapse.c   Run as root (pagemap pfns).
 * Exit: 0 = the kernel behaved as expected; 1 = it did not (message says how); 2 = cannot run here.
 * Output: plain words, plus `PINWATCH {json}` fact lines for tests, the collector and the benchmark. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>
#include <linux/userfaultfd.h>

static const char *scenario = "shmem-uffd-collapse";

/* ---- pinwatch scaffolding: base (identical in every scenario, checked by test/unit/scenarios) ---- */
#define PAGE 4096UL

static __attribute__((unused)) uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void fail(int code, const char *fmt, ...)
{
	va_list ap;
	fflush(stdout);
	fprintf(stderr, "FAIL (%s, exit %d): ", scenario, code);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(code);
}

/* One machine-readable line: PINWATCH {"scenario":..,"step":..,"pid":..,<fields>} */
static void fact(const char *step, const char *fmt, ...)
{
	va_list ap;
	printf("PINWATCH {\"scenario\":\"%s\",\"step\":\"%s\",\"pid\":%d", scenario, step, getpid());
	if (fmt && *fmt) {
		putchar(',');
		va_start(ap, fmt);
		vprintf(fmt, ap);
		va_end(ap);
	}
	printf("}\n");
}

static void start(void)
{
	struct utsname u;
	setvbuf(stdout, NULL, _IOLBF, 0); /* a collector reads us live through a pipe */
	uname(&u);
	printf("%s: pid %d, kernel %s\n", scenario, getpid(), u.release);
	fact("start", "\"kernel\":\"%s\"", u.release);
}

static void hold(const char *env, long dflt, const char *why)
{
	const char *v = getenv(env);
	long ms = dflt;
	char *end;
	if (v && *v) {
		ms = strtol(v, &end, 10);
		if (*end || ms < 0)
			fail(2, "%s must be a number of milliseconds, got '%s'", env, v);
	}
	printf("holding %ld ms (%s)\n", ms, why);
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000 };
	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}
#define HOLD_BEFORE() hold("PINWATCH_HOLD_BEFORE_MS", 300, "device in use")
#define HOLD_AFTER() hold("PINWATCH_HOLD_AFTER_MS", 1500, "pin stays live so a pagemap verifier can read it")

/* /proc/self/pagemap: bit 63 present, bit 62 swapped, bits 0-54 pfn (0 unless root). */
#define PM_PRESENT (1ull << 63)
#define PM_SWAPPED (1ull << 62)
#define PM_PFN_MASK ((1ull << 55) - 1)
static uint64_t pagemap(const void *addr)
{
	static int fd = -1, fd_pid;
	uint64_t e;
	if (fd < 0 || fd_pid != getpid()) { /* after fork, /proc/self must be reopened */
		if (fd >= 0)
			close(fd);
		fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
		fd_pid = getpid();
		if (fd < 0)
			fail(2, "open /proc/self/pagemap: %s", strerror(errno));
	}
	if (pread(fd, &e, 8, (off_t)((uintptr_t)addr / PAGE * 8)) != 8)
		fail(2, "read /proc/self/pagemap: %s", strerror(errno));
	return e;
}
/* pfn of a present page; 0 when not present. Fails when pfns are hidden (not root). */
static __attribute__((unused)) uint64_t pfn_of(const void *addr)
{
	uint64_t e = pagemap(addr);
	if (!(e & PM_PRESENT))
		return 0;
	if (!(e & PM_PFN_MASK))
		fail(2, "pagemap hides pfns: run as root (CAP_SYS_ADMIN)");
	return e & PM_PFN_MASK;
}
/* ---- end base ---- */

#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25
#endif
#define HUGE (2UL << 20)
#define NPAGES (HUGE / PAGE)
#define POPULATED 256 /* pages 0..255 written; 256..511 are holes */
#define KPF_THP 22

static int present_pages(const char *range)
{
	int n = 0;
	for (unsigned long i = 0; i < NPAGES; i++)
		n += (pagemap(range + i * PAGE) & PM_PRESENT) != 0;
	return n;
}

/* /proc/kpageflags bit for a pfn; -1 when unreadable. */
static int kpageflag(uint64_t pfn, int bit)
{
	uint64_t flags;
	int fd = open("/proc/kpageflags", O_RDONLY | O_CLOEXEC);
	ssize_t got = fd < 0 ? -1 : pread(fd, &flags, 8, (off_t)(pfn * 8));
	if (fd >= 0)
		close(fd);
	return got == 8 ? (int)((flags >> bit) & 1) : -1;
}

static const char *errname(int e)
{
	switch (e) {
	case 0: return "";
	case EBUSY: return "EBUSY";
	case EAGAIN: return "EAGAIN";
	case EINVAL: return "EINVAL";
	case ENOMEM: return "ENOMEM";
	default: return "other";
	}
}

static int collapse(char *range)
{
	return madvise(range, HUGE, MADV_COLLAPSE) ? errno : 0;
}

int main(void)
{
	start();
	char sysfs[64] = "?";
	int sfd = open("/sys/kernel/mm/transparent_hugepage/shmem_enabled", O_RDONLY | O_CLOEXEC);
	if (sfd >= 0) {
		ssize_t n = read(sfd, sysfs, sizeof sysfs - 1);
		sysfs[n > 0 ? n - 1 : 0] = 0;
		close(sfd);
	}
	printf("shmem THP setting: %s (MADV_COLLAPSE needs anything but [deny])\n", sysfs);
	if (strstr(sysfs, "[deny]"))
		fail(2, "shmem_enabled is deny: MADV_COLLAPSE cannot collapse shmem here");

	int fd = memfd_create("pinwatch-shmem-uffd", MFD_CLOEXEC);
	if (fd < 0 || ftruncate(fd, HUGE))
		fail(2, "memfd_create/ftruncate: %s", strerror(errno));
	/* Reserve twice the size, then map the memfd at the 2 MiB boundary inside (file offset 0 is aligned). */
	char *res = mmap(NULL, 2 * HUGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (res == MAP_FAILED)
		fail(2, "mmap reserve: %s", strerror(errno));
	char *range = (char *)(((uintptr_t)res + HUGE - 1) & ~(HUGE - 1));
	if (mmap(range, HUGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, 0) == MAP_FAILED)
		fail(2, "mmap memfd: %s", strerror(errno));
	for (unsigned long i = 0; i < POPULATED; i++)
		range[i * PAGE] = 's';
	uint64_t pfn0 = pfn_of(range);
	int present = present_pages(range);
	printf("shmem range %p (2 MiB aligned, memfd %d): %d of %lu pages written, %lu holes; page 0 pfn 0x%lx\n",
	       (void *)range, fd, present, NPAGES, NPAGES - present, (unsigned long)pfn0);

	int uffd = (int)syscall(__NR_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (uffd < 0)
		fail(2, "userfaultfd: %s (needs root or vm.unprivileged_userfaultfd=1)", strerror(errno));
	struct uffdio_api api = { .api = UFFD_API };
	if (ioctl(uffd, UFFDIO_API, &api))
		fail(2, "UFFDIO_API: %s", strerror(errno));
	struct uffdio_register reg = { .range = { (uintptr_t)range, HUGE }, .mode = UFFDIO_REGISTER_MODE_MISSING };
	if (ioctl(uffd, UFFDIO_REGISTER, &reg))
		fail(2, "UFFDIO_REGISTER (MISSING) on shmem: %s", strerror(errno));
	uint64_t t_armed = now_ns();
	printf("userfaultfd %d registered MISSING on the range: a touch of a hole must raise a uffd event\n", uffd);
	fact("armed", "\"range_start\":\"%p\",\"range_len\":%lu,\"present_pages\":%d,\"holes\":%lu,\"uffd\":%d,\"pfn0\":%lu,\"t_armed_ns\":%lu",
	     (void *)range, HUGE, present, NPAGES - present, uffd, (unsigned long)pfn0, (unsigned long)t_armed);
	HOLD_BEFORE();

	uint64_t t_hazard = now_ns();
	int err = collapse(range);
	int present_after = present_pages(range);
	uint64_t pfn0_after = pfn_of(range);
	printf("MADV_COLLAPSE with the userfaultfd armed: %s%s%s; present pages %d -> %d, page 0 pfn 0x%lx\n",
	       err ? "refused, " : "COLLAPSED", errname(err), err ? "" : " (holes filled behind the userfaultfd's back)",
	       present, present_after, (unsigned long)pfn0_after);
	fact("collapse_armed", "\"range_start\":\"%p\",\"t_hazard_ns\":%lu,\"collapse_errno\":%d,\"collapse_error\":\"%s\",\"present_after\":%d,\"pfn0_after\":%lu",
	     (void *)range, (unsigned long)t_hazard, err, errname(err), present_after, (unsigned long)pfn0_after);
	if (!err)
		fail(1, "collapse_file filled the holes of a range with a MISSING userfaultfd (kernels before 6.4 do)");
	/* The refused collapse unmapped the pages it had isolated (try_to_unmap in collapse_file) and its
	 * rollback leaves them in the page cache only: a read of page 0 (not a hole: no uffd event) maps it again. */
	volatile char c = range[0];
	(void)c;
	uint64_t pfn0_refault = pfn_of(range);
	printf("read page 0 after the refusal: pfn 0x%lx (%s)\n", (unsigned long)pfn0_refault,
	       pfn0_refault == pfn0 ? "the same page, from the page cache" : "A DIFFERENT PAGE");
	fact("refault", "\"pfn0_refault\":%lu,\"same_page\":%s", (unsigned long)pfn0_refault,
	     pfn0_refault == pfn0 ? "true" : "false");
	if (err == EINVAL)
		fail(2, "MADV_COLLAPSE: EINVAL (THP for shmem unavailable here?)");
	if (err != EBUSY)
		fail(1, "MADV_COLLAPSE refused with %s (%d): expected EBUSY (SCAN_EXCEED_NONE_PTE)", errname(err), err);
	HOLD_AFTER();

	struct uffdio_range unreg = { (uintptr_t)range, HUGE };
	if (ioctl(uffd, UFFDIO_UNREGISTER, &unreg))
		fail(2, "UFFDIO_UNREGISTER: %s", strerror(errno));
	printf("userfaultfd unregistered\n");
	uint64_t t_collapse = now_ns();
	err = collapse(range);
	present_after = present_pages(range);
	pfn0_after = pfn_of(range);
	uint64_t pfn_last = pfn_of(range + (NPAGES - 1) * PAGE);
	int thp = pfn0_after ? kpageflag(pfn0_after, KPF_THP) : -1;
	printf("MADV_COLLAPSE without the userfaultfd: %s%s; present pages %d, page 0 pfn 0x%lx, page 511 pfn 0x%lx (THP flag %d)\n",
	       err ? "refused, " : "collapsed", errname(err), present_after, (unsigned long)pfn0_after,
	       (unsigned long)pfn_last, thp);
	fact("collapse_unarmed", "\"range_start\":\"%p\",\"t_collapse_ns\":%lu,\"collapse_errno\":%d,\"present_after\":%d,\"hpfn\":%lu,\"thp\":%s",
	     (void *)range, (unsigned long)t_collapse, err, present_after, (unsigned long)pfn0_after,
	     thp == 1 ? "true" : "false");
	if (err)
		fail(1, "MADV_COLLAPSE still refused after UFFDIO_UNREGISTER: %s (%d)", errname(err), err);
	if (present_after != (int)NPAGES || pfn_last != pfn0_after + NPAGES - 1)
		fail(1, "collapse returned 0 but the range is not one huge page (present %d)", present_after);
	HOLD_AFTER();
	fact("done", "\"result\":\"refused-then-collapsed\"");
	return 0;
}
