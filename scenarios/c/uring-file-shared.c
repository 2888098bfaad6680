/* pinwatch scenario uring-file-shared: io_uring tries to register a MAP_SHARED, writable mapping of a
 * regular file on a block filesystem (ext4 here). A long-term writable pin on page-cache pages breaks
 * writeback (stable pages, page_mkwrite; the ext4 BUG_ON of seed 003). Since 6.5 GUP refuses
 * FOLL_LONGTERM on such mappings (writable_file_mapping_allowed), so registration fails with EFAULT;
 * before 6.5 io_uring refused them itself after pinning (EOPNOTSUPP: only anonymous, shmem and hugetlbfs
 * memory; seen on 5.10 and 6.1), while other long-term pinners (RDMA, VFIO) were granted and the hazard
 * was live. The directory defaults to /var/tmp; set PINWATCH_FILE_DIR to use
 * another one (it must not be tmpfs: shmem is allowed and would not show the refusal).
 *
 * Self-contained on purpose (no liburing, no shared header): it can be pasted into a bug report.
 * Build: cc -O2 -Wall -Werror -o uring-file-shared uring-file-shared.c   Run as root (pagemap pfns).
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

#include <sys/vfs.h>

static const char *scenario = "uring-file-shared";

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

static const char *fs_name(long magic)
{
	switch (magic) {
	case 0xEF53: return "ext4";
	case 0x58465342: return "xfs";
	case 0x9123683E: return "btrfs";
	case 0x01021994: return "tmpfs";
	case 0x794c7630: return "overlayfs";
	case 0x6969: return "nfs";
	case 0x65735546: return "fuse";
	default: return "other";
	}
}

/* errno -> its name (strerrorname_np needs glibc 2.32) */
static const char *errname(int e)
{
	switch (e) {
	case 0: return "";
	case EFAULT: return "EFAULT";
	case EOPNOTSUPP: return "EOPNOTSUPP";
	case EPERM: return "EPERM";
	case ENOMEM: return "ENOMEM";
	case EINVAL: return "EINVAL";
	case EBUSY: return "EBUSY";
	default: return "other";
	}
}

/* "6.18.44-x" -> 6018 */
static int kernel_version(void)
{
	struct utsname u;
	int major = 0, minor = 0;
	uname(&u);
	sscanf(u.release, "%d.%d", &major, &minor);
	return major * 1000 + minor;
}

int main(void)
{
	struct ring r;
	char path[4096];
	struct statfs sfs;

	start();
	ring_init(&r);
	const char *dir = getenv("PINWATCH_FILE_DIR");
	if (!dir || !*dir)
		dir = "/var/tmp";
	if (statfs(dir, &sfs))
		fail(2, "statfs %s: %s", dir, strerror(errno));
	if (sfs.f_type == 0x01021994)
		fail(2, "%s is tmpfs (shmem may be pinned): set PINWATCH_FILE_DIR to a directory on a block filesystem", dir);
	snprintf(path, sizeof path, "%s/pinwatch-uring-file-shared.XXXXXX", dir);
	int fd = mkstemp(path);
	if (fd < 0)
		fail(2, "mkstemp in %s: %s", dir, strerror(errno));
	unlink(path); /* the open fd keeps the file; nothing is left behind */
	if (ftruncate(fd, NPAGES * PAGE))
		fail(2, "ftruncate: %s", strerror(errno));
	char *buf = mmap(NULL, NPAGES * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (buf == MAP_FAILED)
		fail(2, "mmap: %s", strerror(errno));
	memset(buf, 'a', NPAGES * PAGE);
	uint64_t pfn0 = pfn_of(buf);
	printf("buffer %p: %d pages of a regular file in %s (%s, magic 0x%lx) mapped MAP_SHARED, all written; page 0 pfn 0x%lx\n",
	       (void *)buf, NPAGES, dir, fs_name((long)sfs.f_type), (unsigned long)sfs.f_type, (unsigned long)pfn0);
	fact("mapped", "\"buf\":\"%p\",\"len\":%lu,\"fs\":\"%s\",\"fs_magic\":%lu,\"pfn0\":%lu", (void *)buf, NPAGES * PAGE,
	     fs_name((long)sfs.f_type), (unsigned long)sfs.f_type, (unsigned long)pfn0);

	uint64_t t_hazard = now_ns();
	int err = register_buffer(&r, buf, NPAGES * PAGE);
	int v = kernel_version();
	fact("register", "\"buf\":\"%p\",\"t_hazard_ns\":%lu,\"register_errno\":%d,\"register_error\":\"%s\",\"granted\":%s",
	     (void *)buf, (unsigned long)t_hazard, -err, errname(-err), err ? "false" : "true");
	if (err) {
		printf("IORING_REGISTER_BUFFERS refused: %s (%s): the kernel will not pin page-cache pages long-term\n",
		       errname(-err), strerror(-err));
		/* no pin to hold: stay alive so a collector can still read /proc/PID/maps for the backing */
		hold("PINWATCH_HOLD_AFTER_MS", 1500, "process stays alive so a collector can read /proc/PID/maps");
		if (v < 6005 && err != -EOPNOTSUPP)
			fail(1, "refused with %s on a pre-6.5 kernel (%d.%d): expected EOPNOTSUPP from io_uring's own check",
			     errname(-err), v / 1000, v % 1000);
		fact("done", "\"result\":\"refused\"");
		return 0;
	}
	printf("IORING_REGISTER_BUFFERS granted: page-cache pages are pinned long-term (writeback hazard)\n");
	if (v >= 6005)
		fail(1, "granted on %d.%d: kernels since 6.5 refuse FOLL_LONGTERM on writable file mappings", v / 1000,
		     v % 1000);
	HOLD_AFTER();
	unregister_buffers(&r);
	fact("done", "\"result\":\"granted\"");
	return 0;
}
