/* pinwatch scenario odirect-read: the control for short-term pins. A file on a block filesystem is read with
 * O_DIRECT into anonymous memory: the block layer pins the user pages only for the bio (FOLL_PIN since 6.x,
 * a FOLL_GET reference before) and releases them when the read completes. The device (the disk) wrote the
 * bytes; the process reads them. Nothing is a long-term DMA buffer: a collector must stay silent.
 *
 * Self-contained on purpose: it can be pasted into a bug report.
 * Build: cc -O2 -Wall -Werror -o odirect-read odirect-read.c   Run as root (pagemap pfns).
 * The file goes to /var/tmp, or PINWATCH_FILE_DIR (a block filesystem: tmpfs has no direct I/O to a device).
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
#include <sys/mman.h>
#include <sys/statfs.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

static const char *scenario = "odirect-read";

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

#define NPAGES 4

int main(void)
{
	uint64_t pfn[NPAGES];
	struct statfs sfs;
	char path[4096];

	start();
	const char *dir = getenv("PINWATCH_FILE_DIR");
	if (!dir || !*dir)
		dir = "/var/tmp";
	if (statfs(dir, &sfs))
		fail(2, "statfs %s: %s", dir, strerror(errno));
	if (sfs.f_type == 0x01021994)
		fail(2, "%s is tmpfs: set PINWATCH_FILE_DIR to a directory on a block filesystem", dir);
	snprintf(path, sizeof path, "%s/pinwatch-odirect-%d", dir, getpid());
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (fd < 0)
		fail(2, "open %s: %s", path, strerror(errno));
	unlink(path);
	char *pattern = malloc(NPAGES * PAGE);
	for (unsigned long i = 0; i < NPAGES * PAGE; i++)
		pattern[i] = (char)('A' + i % 23);
	if (pwrite(fd, pattern, NPAGES * PAGE, 0) != (ssize_t)(NPAGES * PAGE) || fsync(fd))
		fail(2, "write %s: %s", path, strerror(errno));
	char fdpath[64]; /* the file is unlinked already: reopen it through /proc for O_DIRECT */
	snprintf(fdpath, sizeof fdpath, "/proc/self/fd/%d", fd);
	int direct = open(fdpath, O_RDONLY | O_DIRECT);
	if (direct < 0)
		fail(2, "O_DIRECT open on %s: %s (the filesystem has no direct I/O)", dir, strerror(errno));

	char *buf = mmap(NULL, NPAGES * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (buf == MAP_FAILED)
		fail(2, "mmap: %s", strerror(errno));
	memset(buf, 'a', NPAGES * PAGE);
	for (int i = 0; i < NPAGES; i++)
		pfn[i] = pfn_of(buf + i * PAGE);
	fact("mapped", "\"buf\":\"%p\",\"len\":%lu,\"fs_magic\":%ld,\"pfns\":[%lu,%lu,%lu,%lu]", (void *)buf, NPAGES * PAGE,
	     (long)sfs.f_type, (unsigned long)pfn[0], (unsigned long)pfn[1], (unsigned long)pfn[2], (unsigned long)pfn[3]);
	HOLD_BEFORE();
	ssize_t got = pread(direct, buf, NPAGES * PAGE, 0);
	if (got != (ssize_t)(NPAGES * PAGE))
		fail(2, "O_DIRECT read returned %zd: %s", got, got < 0 ? strerror(errno) : "short");
	int same = memcmp(buf, pattern, NPAGES * PAGE) == 0;
	int moved = 0;
	for (int i = 0; i < NPAGES; i++)
		moved += pfn_of(buf + i * PAGE) != pfn[i];
	printf("O_DIRECT read of %lu bytes from %s into %p: the disk's bytes are %s; %d pages moved\n", NPAGES * PAGE, dir,
	       (void *)buf, same ? "visible" : "NOT VISIBLE", moved);
	fact("read", "\"bytes\":%zd,\"device_write_visible\":%s,\"pages_moved\":%d", got, same ? "true" : "false", moved);
	if (!same || moved)
		fail(1, "the O_DIRECT read must land in the buffer's own pages");
	HOLD_AFTER();
	close(direct);
	close(fd);
	fact("done", "\"result\":\"clean\"");
	return 0;
}
