/* pinwatch scenario vmsplice-pageout: seed 002's reproducer path. One anonymous page is vmspliced into a
 * pipe that nobody reads: the pipe holds a plain GUP reference (FOLL_GET, not a pin) on the page. Then
 * MADV_PAGEOUT asks reclaim to swap it out, the process reads it (refault) and writes it. Before the
 * 5.19 COW fixes, try_to_unmap dropped the page's exclusivity, the refault mapped it shared and the write
 * copied it (do_wp_page: extra reference -> copy): the pipe then returns the OLD bytes while the process
 * sees the new ones. Since 5.19 (PG_anon_exclusive kept in the swap PTE) the write reuses the page.
 * Reclaim can only unmap an anonymous page when swap is configured. This program reports which of the
 * outcomes happened (not unmapped / unmapped but same page / diverged) and does not fail on any of them.
 *
 * Self-contained on purpose (no liburing, no shared header): it can be pasted into a bug report.
 * Build: cc -O2 -Wall -Werror -o vmsplice-pageout vmsplice-pageout.c   Run as root (pagemap pfns).
 * Exit: 0 = it ran (the outcome is reported); 2 = cannot run here.
 * Output: plain words, plus `PINWATCH {json}` fact lines for tests, the collector and the benchmark. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

static const char *scenario = "vmsplice-pageout";

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

/* Active swap devices (lines of /proc/swaps after the header). */
static int swap_devices(void)
{
	char line[512];
	int n = -1;
	FILE *f = fopen("/proc/swaps", "re");
	if (!f)
		return 0;
	while (fgets(line, sizeof line, f))
		n++;
	fclose(f);
	return n < 0 ? 0 : n;
}

int main(void)
{
	int p[2];
	char readback[64];

	start();
	int swaps = swap_devices();
	printf("active swap devices: %d%s\n", swaps, swaps ? "" : " (anonymous pages cannot be paged out)");
	char *buf = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (buf == MAP_FAILED)
		fail(2, "mmap: %s", strerror(errno));
	memset(buf, 'o', PAGE); /* "old" bytes */
	uint64_t pfn_before = pfn_of(buf);
	if (pipe(p))
		fail(2, "pipe: %s", strerror(errno));
	struct iovec iov = { buf, PAGE };
	ssize_t n = vmsplice(p[1], &iov, 1, 0);
	if (n != (ssize_t)PAGE)
		fail(2, "vmsplice: %zd (%s)", n, strerror(errno));
	uint64_t t_pin = now_ns();
	printf("page %p (pfn 0x%lx) vmspliced into pipe fd %d: the pipe holds a reference to it (unread)\n", (void *)buf,
	       (unsigned long)pfn_before, p[1]);
	fact("pinned", "\"buf\":\"%p\",\"len\":%lu,\"pipe_fd\":%d,\"pfn_before\":%lu,\"swap_devices\":%d,\"t_pin_ns\":%lu",
	     (void *)buf, PAGE, p[1], (unsigned long)pfn_before, swaps, (unsigned long)t_pin);
	HOLD_BEFORE();

	uint64_t t_hazard = now_ns();
	int ret = madvise(buf, PAGE, MADV_PAGEOUT) ? errno : 0;
	uint64_t e = pagemap(buf);
	int present = (e & PM_PRESENT) != 0, swapped = (e & PM_SWAPPED) != 0;
	uint64_t pfn_pageout = present ? (e & PM_PFN_MASK) : 0;
	printf("MADV_PAGEOUT: %s; pagemap: %s%s, pfn 0x%lx\n", ret ? strerror(ret) : "ok",
	       present ? "present" : "not present", swapped ? ", swapped" : "", (unsigned long)pfn_pageout);
	volatile char c = buf[0]; /* read: a swapped-out page is mapped back from the swap cache */
	(void)c;
	uint64_t pfn_read = pfn_of(buf);
	memset(buf, 'n', PAGE); /* "new" bytes: reuse the page, or copy it (do_wp_page) */
	uint64_t pfn_after = pfn_of(buf);
	printf("read it: pfn 0x%lx; wrote it: pfn 0x%lx\n", (unsigned long)pfn_read, (unsigned long)pfn_after);
	fact("hazard", "\"buf\":\"%p\",\"t_hazard_ns\":%lu,\"pageout_errno\":%d,\"present_after_pageout\":%s,\"swapped_after_pageout\":%s,\"pfn_after_read\":%lu,\"pfn_after\":%lu",
	     (void *)buf, (unsigned long)t_hazard, ret, present ? "true" : "false", swapped ? "true" : "false",
	     (unsigned long)pfn_read, (unsigned long)pfn_after);
	HOLD_AFTER();

	n = read(p[0], readback, sizeof readback);
	if (n != (ssize_t)sizeof readback)
		fail(2, "read pipe: %zd (%s)", n, strerror(errno));
	int pipe_new = readback[0] == 'n', pipe_old = readback[0] == 'o';
	const char *outcome;
	if (present && pfn_pageout == pfn_before && pfn_after == pfn_before)
		outcome = "not-unmapped";
	else if (pipe_new && pfn_after == pfn_before)
		outcome = "unmapped-same-page";
	else if (pipe_old)
		outcome = "diverged";
	else
		outcome = "other";
	printf("the pipe returns the %s bytes ('%c'): ", pipe_new ? "NEW" : pipe_old ? "OLD" : "unexpected", readback[0]);
	if (!strcmp(outcome, "not-unmapped"))
		printf("not unmapped (kernel protects it)\n");
	else if (!strcmp(outcome, "unmapped-same-page"))
		printf("swapped out and faulted back as the same page: no divergence\n");
	else if (!strcmp(outcome, "diverged"))
		printf("DIVERGED: the pipe holds pfn 0x%lx, the process maps pfn 0x%lx (seed 002)\n",
		       (unsigned long)pfn_before, (unsigned long)pfn_after);
	else
		printf("unexpected combination, see the pfns above\n");
	fact("done", "\"result\":\"%s\",\"pipe_bytes\":\"%s\",\"pfn_before\":%lu,\"pfn_after\":%lu", outcome,
	     pipe_new ? "new" : pipe_old ? "old" : "other", (unsigned long)pfn_before, (unsigned long)pfn_after);
	return 0;
}
