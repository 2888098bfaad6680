/* pinwatch scenario collapse-pinned-anon: a 2 MiB-aligned anonymous range of 512 small pages, four of
 * which (pages 16-19) are registered as an io_uring fixed buffer. MADV_COLLAPSE must copy every page
 * into a new huge page; a pinned page cannot be replaced (the device would keep the old one), so the
 * scan (hpage_collapse_scan_pmd) sees the extra references, reports SCAN_PAGE_COUNT and the madvise
 * fails with EAGAIN (seed 003: pins must be tracked apart from ordinary references; folio_maybe_dma_pinned).
 * After unregistering, the same MADV_COLLAPSE succeeds and the pages move into a huge page.
 *
 * Self-contained on purpose (no liburing, no shared header): it can be pasted into a bug report.
 * Build: cc -O2 -Wall -Werror -o collapse-pinned-anon collapse-pinned-anon.c   Run as root (pagemap pfns).
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
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>
#include <linux/io_uring.h>

static const char *scenario = "collapse-pinned-anon";

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
/* ---- pinwatch scaffolding: io_uring (identical in every io_uring scenario) ---- */
/* A minimal io_uring: setup, the three ring mmaps, one SQE at a time. */
struct ring {
	int fd;
	unsigned *sq_tail, *sq_mask, *sq_array, *cq_head, *cq_tail, *cq_mask;
	struct io_uring_sqe *sqes;
	struct io_uring_cqe *cqes;
};
static void ring_init(struct ring *r)
{
	struct io_uring_params p;
	memset(&p, 0, sizeof p);
	r->fd = (int)syscall(__NR_io_uring_setup, 4, &p);
	if (r->fd < 0)
		fail(2, "io_uring_setup: %s (see /proc/sys/kernel/io_uring_disabled)", strerror(errno));
	size_t sq_sz = p.sq_off.array + p.sq_entries * sizeof(unsigned);
	size_t cq_sz = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
	if (p.features & IORING_FEAT_SINGLE_MMAP)
		sq_sz = cq_sz = sq_sz > cq_sz ? sq_sz : cq_sz;
	char *sq = mmap(NULL, sq_sz, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, r->fd, IORING_OFF_SQ_RING);
	char *cq = (p.features & IORING_FEAT_SINGLE_MMAP) ? sq :
		mmap(NULL, cq_sz, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, r->fd, IORING_OFF_CQ_RING);
	r->sqes = mmap(NULL, p.sq_entries * sizeof(struct io_uring_sqe), PROT_READ | PROT_WRITE,
		       MAP_SHARED | MAP_POPULATE, r->fd, IORING_OFF_SQES);
	if (sq == MAP_FAILED || cq == MAP_FAILED || r->sqes == MAP_FAILED)
		fail(2, "mmap io_uring rings: %s", strerror(errno));
	r->sq_tail = (unsigned *)(sq + p.sq_off.tail);
	r->sq_mask = (unsigned *)(sq + p.sq_off.ring_mask);
	r->sq_array = (unsigned *)(sq + p.sq_off.array);
	r->cq_head = (unsigned *)(cq + p.cq_off.head);
	r->cq_tail = (unsigned *)(cq + p.cq_off.tail);
	r->cq_mask = (unsigned *)(cq + p.cq_off.ring_mask);
	r->cqes = (struct io_uring_cqe *)(cq + p.cq_off.cqes);
}
static int register_buffer(struct ring *r, void *addr, size_t len)
{
	struct iovec iov = { addr, len };
	return (int)syscall(__NR_io_uring_register, r->fd, IORING_REGISTER_BUFFERS, &iov, 1) ? -errno : 0;
}
static __attribute__((unused)) void unregister_buffers(struct ring *r)
{
	if (syscall(__NR_io_uring_register, r->fd, IORING_UNREGISTER_BUFFERS, NULL, 0))
		fail(2, "IORING_UNREGISTER_BUFFERS: %s", strerror(errno));
	printf("unregistered the buffer (pins dropped)\n");
}
/* The "device" writes `n` bytes at `addr` (inside registered buffer 0): IORING_OP_READ_FIXED from a
 * pipe. The kernel copies into the pinned pages through its own reference, never through our page
 * table, exactly like DMA. Returns the CQE result (bytes or -errno). */
static __attribute__((unused)) int device_write(struct ring *r, void *addr, const char *bytes, unsigned n)
{
	int p[2];
	if (pipe(p) || write(p[1], bytes, n) != (ssize_t)n)
		fail(2, "pipe: %s", strerror(errno));
	unsigned tail = *r->sq_tail, idx = tail & *r->sq_mask;
	struct io_uring_sqe *sqe = &r->sqes[idx];
	memset(sqe, 0, sizeof *sqe);
	sqe->opcode = IORING_OP_READ_FIXED;
	sqe->fd = p[0];
	sqe->addr = (uintptr_t)addr;
	sqe->len = n;
	sqe->off = (uint64_t)-1; /* pipes have no position */
	sqe->buf_index = 0;
	r->sq_array[idx] = idx;
	__atomic_store_n(r->sq_tail, tail + 1, __ATOMIC_RELEASE);
	if (syscall(__NR_io_uring_enter, r->fd, 1, 1, IORING_ENTER_GETEVENTS, NULL, 0) < 0)
		fail(2, "io_uring_enter: %s", strerror(errno));
	unsigned head = *r->cq_head;
	if (head == __atomic_load_n(r->cq_tail, __ATOMIC_ACQUIRE))
		fail(2, "io_uring: no completion");
	int res = r->cqes[head & *r->cq_mask].res;
	__atomic_store_n(r->cq_head, head + 1, __ATOMIC_RELEASE);
	close(p[0]);
	close(p[1]);
	return res;
}
/* ---- end io_uring ---- */

#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25
#endif
#define HUGE (2UL << 20)
#define NPAGES (HUGE / PAGE)
#define PIN_FIRST 16 /* pinned pages 16..19: the scan refuses at page 16, not at the range start */
#define PIN_PAGES 4
#define KPF_THP 22

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

int main(void)
{
	struct ring r;
	uint64_t pfn[PIN_PAGES];

	start();
	ring_init(&r);
	char *res = mmap(NULL, 2 * HUGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (res == MAP_FAILED)
		fail(2, "mmap: %s", strerror(errno));
	char *range = (char *)(((uintptr_t)res + HUGE - 1) & ~(HUGE - 1));
	/* We need 512 small pages. With THP "enabled" = always a first touch would map a huge page: then
	 * populate under MADV_NOHUGEPAGE and lift it (MADV_HUGEPAGE, which MADV_COLLAPSE needs) only once the
	 * pin is in place, because MADV_HUGEPAGE wakes khugepaged, which would collapse an unpinned range
	 * before we look. With madvise/never nothing is needed: MADV_COLLAPSE ignores that setting. */
	char thp_mode[64] = "";
	int tfd = open("/sys/kernel/mm/transparent_hugepage/enabled", O_RDONLY | O_CLOEXEC);
	if (tfd >= 0) {
		ssize_t n = read(tfd, thp_mode, sizeof thp_mode - 1);
		thp_mode[n > 0 ? n - 1 : 0] = 0;
		close(tfd);
	}
	int thp_always = strstr(thp_mode, "[always]") != NULL;
	printf("THP enabled: %s%s\n", thp_mode, thp_always ? " (populating under MADV_NOHUGEPAGE)" : "");
	if (thp_always && madvise(range, HUGE, MADV_NOHUGEPAGE))
		fail(2, "madvise(MADV_NOHUGEPAGE): %s", strerror(errno));
	memset(range, 'a', HUGE);
	char *pinned = range + PIN_FIRST * PAGE;
	printf("anonymous range %p (2 MiB aligned): 512 pages, all written\n", (void *)range);

	int err = register_buffer(&r, pinned, PIN_PAGES * PAGE);
	if (err)
		fail(1, "IORING_REGISTER_BUFFERS refused: %s (expected: granted)", strerror(-err));
	if (thp_always && madvise(range, HUGE, MADV_HUGEPAGE))
		fail(2, "madvise(MADV_HUGEPAGE): %s", strerror(errno));
	if (kpageflag(pfn_of(range), KPF_THP) != 0 || kpageflag(pfn_of(pinned), KPF_THP) != 0)
		fail(2, "the range is already backed by a huge page (or /proc/kpageflags unreadable)");
	uint64_t t_pin = now_ns();
	for (int i = 0; i < PIN_PAGES; i++) {
		pfn[i] = pfn_of(pinned + i * PAGE);
		printf("  page %d at %p pinned, pfn 0x%lx\n", PIN_FIRST + i, (void *)(pinned + i * PAGE), (unsigned long)pfn[i]);
	}
	printf("pages %d-%d registered as io_uring fixed buffer 0 on ring fd %d\n", PIN_FIRST, PIN_FIRST + PIN_PAGES - 1, r.fd);
	fact("pinned", "\"ring_fd\":%d,\"range_start\":\"%p\",\"range_len\":%lu,\"buf\":\"%p\",\"pinned_addr\":\"%p\",\"len\":%lu,\"pfns\":[%lu,%lu,%lu,%lu],\"t_pin_ns\":%lu",
	     r.fd, (void *)range, HUGE, (void *)pinned, (void *)pinned, PIN_PAGES * PAGE, (unsigned long)pfn[0],
	     (unsigned long)pfn[1], (unsigned long)pfn[2], (unsigned long)pfn[3], (unsigned long)t_pin);
	HOLD_BEFORE();

	uint64_t t_hazard = now_ns();
	err = madvise(range, HUGE, MADV_COLLAPSE) ? errno : 0;
	uint64_t pfn_after = pfn_of(pinned);
	printf("MADV_COLLAPSE of %p with pages pinned: %s%s; pinned page 16 pfn 0x%lx -> 0x%lx\n", (void *)range,
	       err ? "refused, " : "COLLAPSED", errname(err), (unsigned long)pfn[0], (unsigned long)pfn_after);
	fact("collapse_pinned", "\"range_start\":\"%p\",\"pinned_addr\":\"%p\",\"t_hazard_ns\":%lu,\"collapse_errno\":%d,\"collapse_error\":\"%s\",\"pfn_before\":%lu,\"pfn_after\":%lu",
	     (void *)range, (void *)pinned, (unsigned long)t_hazard, err, errname(err), (unsigned long)pfn[0],
	     (unsigned long)pfn_after);
	if (!err)
		fail(1, "MADV_COLLAPSE replaced pinned pages (pinned pfn 0x%lx, mapped pfn 0x%lx)", (unsigned long)pfn[0],
		     (unsigned long)pfn_after);
	if (err == EINVAL)
		fail(2, "MADV_COLLAPSE: EINVAL (no MADV_COLLAPSE before 6.1)");
	if (err != EAGAIN)
		fail(1, "MADV_COLLAPSE refused with %s (%d): expected EAGAIN (SCAN_PAGE_COUNT)", errname(err), err);
	if (pfn_after != pfn[0])
		fail(1, "the refused collapse moved the pinned page");
	HOLD_AFTER();

	unregister_buffers(&r);
	uint64_t t_collapse = now_ns();
	err = madvise(range, HUGE, MADV_COLLAPSE) ? errno : 0;
	uint64_t hpfn = pfn_of(range);
	pfn_after = pfn_of(pinned);
	int thp = kpageflag(hpfn, KPF_THP);
	printf("MADV_COLLAPSE after unregistering: %s%s; page 0 pfn 0x%lx (THP flag %d), page 16 pfn 0x%lx\n",
	       err ? "refused, " : "collapsed", errname(err), (unsigned long)hpfn, thp, (unsigned long)pfn_after);
	fact("collapse_unpinned", "\"t_collapse_ns\":%lu,\"collapse_errno\":%d,\"hpfn\":%lu,\"thp\":%s,\"pfn_after\":%lu",
	     (unsigned long)t_collapse, err, (unsigned long)hpfn, thp == 1 ? "true" : "false", (unsigned long)pfn_after);
	if (err || thp != 1 || pfn_after != hpfn + PIN_FIRST)
		fail(1, "MADV_COLLAPSE without pins did not produce a huge page (%s)", errname(err));
	fact("done", "\"result\":\"refused-then-collapsed\"");
	return 0;
}
