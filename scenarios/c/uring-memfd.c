/* pinwatch scenario uring-memfd: io_uring registers a MAP_SHARED mapping of a memfd (shmem). Since 6.5
 * FOLL_LONGTERM refuses writable file-backed mappings, but shmem has no writeback and is allowed
 * (seed 003: the file-backed hazard is writeback, which shmem does not do). The buffer is used by the
 * "device" and released cleanly: a collector must stay silent (the backing must be recognised as shmem).
 *
 * Self-contained on purpose (no liburing, no shared header): it can be pasted into a bug report.
 * Build: cc -O2 -Wall -Werror -o uring-memfd uring-memfd.c   Run as root (pagemap pfns).
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


static const char *scenario = "uring-memfd";

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

#define NPAGES 4

int main(void)
{
	static const char device_bytes[] = "written-by-the-device";
	struct ring r;
	uint64_t pfn[NPAGES];

	start();
	ring_init(&r);
	int fd = memfd_create("pinwatch-uring-memfd", MFD_CLOEXEC);
	if (fd < 0 || ftruncate(fd, NPAGES * PAGE))
		fail(2, "memfd_create/ftruncate: %s", strerror(errno));
	char *buf = mmap(NULL, NPAGES * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (buf == MAP_FAILED)
		fail(2, "mmap: %s", strerror(errno));
	memset(buf, 'a', NPAGES * PAGE);
	printf("buffer %p: %d pages of memfd %d (shmem) mapped MAP_SHARED, all written\n", (void *)buf, NPAGES, fd);

	int err = register_buffer(&r, buf, NPAGES * PAGE);
	if (err)
		fail(1, "IORING_REGISTER_BUFFERS refused: %s (expected: granted, shmem may be pinned long-term)",
		     strerror(-err));
	uint64_t t_pin = now_ns();
	for (int i = 0; i < NPAGES; i++) {
		pfn[i] = pfn_of(buf + i * PAGE);
		printf("  page %d at %p pinned, pfn 0x%lx\n", i, (void *)(buf + i * PAGE), (unsigned long)pfn[i]);
	}
	printf("registered as io_uring fixed buffer 0 on ring fd %d: granted (shmem)\n", r.fd);
	fact("pinned", "\"ring_fd\":%d,\"buf\":\"%p\",\"len\":%lu,\"pages\":%d,\"pfns\":[%lu,%lu,%lu,%lu],\"t_pin_ns\":%lu,\"register_errno\":0",
	     r.fd, (void *)buf, NPAGES * PAGE, NPAGES, (unsigned long)pfn[0], (unsigned long)pfn[1],
	     (unsigned long)pfn[2], (unsigned long)pfn[3], (unsigned long)t_pin);
	HOLD_BEFORE();

	char *target = buf + PAGE;
	uint64_t t_use = now_ns();
	int res = device_write(&r, target, device_bytes, sizeof device_bytes);
	if (res != (int)sizeof device_bytes)
		fail(2, "device write (READ_FIXED) returned %d", res);
	int visible = memcmp(target, device_bytes, sizeof device_bytes) == 0;
	int moved = 0;
	for (int i = 0; i < NPAGES; i++)
		moved += pfn_of(buf + i * PAGE) != pfn[i];
	printf("device wrote \"%s\" at %p: the process reads it: %s; pages whose pfn changed: %d\n", device_bytes,
	       (void *)target, visible ? "visible" : "NOT visible", moved);
	fact("used", "\"use_addr\":\"%p\",\"t_use_ns\":%lu,\"device_write_visible\":%s,\"pages_moved\":%d", (void *)target,
	     (unsigned long)t_use, visible ? "true" : "false", moved);
	if (!visible || moved)
		fail(1, "a registered shmem buffer nobody touched diverged (device write visible: %d, pages moved: %d)",
		     visible, moved);
	HOLD_AFTER();

	unregister_buffers(&r);
	fact("done", "\"result\":\"clean\"");
	return 0;
}
