/* pinwatch scenario rdma-fork: fork() without MADV_DONTFORK / ibv_fork_init while an MR is registered;
 * the parent writes the buffer, a second process RDMA-WRITEs it. Since 5.9 fork copies DMA-pinned pages into
 * the child, so the parent keeps the device's view and the child loses it (seed 000).
 *
 * Self-contained on purpose (only libibverbs): it can be pasted into a bug report.
 * Build: cc -O2 -Wall -Werror -o rdma-fork rdma-fork.c -libverbs   Run as root (pagemap pfns).
 * pinwatch-ldlibs: -libverbs
 * Needs: an RDMA device (soft-RoCE: modprobe rdma_rxe; rdma link add rxe0 type rxe netdev <netdev>, see
 * docs/vfio-rdma.md); exits 2 without one.
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
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <infiniband/verbs.h>

static const char *scenario = "rdma-fork";

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
/* ---- pinwatch scaffolding: rdma (identical in every rdma scenario) ---- */
/* Soft-RoCE (rdma_rxe) as the device: ibv_reg_mr pins the buffer long-term (ib_umem_get, FOLL_LONGTERM); a
 * second process, forked before any verbs call, owns its own QP connected to ours over rxe's loopback and
 * carries out RDMA WRITE / READ on our MR when asked through a pipe: rxe itself copies into / out of the
 * pinned pages, never through our page table. PINWATCH_RDMA_DEVICE picks a device (default: the first). */
struct rdma {
	struct ibv_context *ctx;
	struct ibv_pd *pd;
	struct ibv_cq *cq;
	struct ibv_qp *qp;
	int gid_index;
	union ibv_gid gid;
};
struct peer { uint32_t qpn; union ibv_gid gid; };
struct cmd { char op; uint32_t len, rkey; uint64_t addr; char bytes[64]; };
static int to_dev[2], from_dev[2];
static pid_t device_pid;
static void rdma_open(struct rdma *r)
{
	int n = 0;
	const char *want = getenv("PINWATCH_RDMA_DEVICE");
	struct ibv_device **list = ibv_get_device_list(&n), *dev = NULL;
	for (int i = 0; list && i < n && !dev; i++)
		if (!want || !*want || !strcmp(want, ibv_get_device_name(list[i])))
			dev = list[i];
	if (!dev)
		fail(2, "no RDMA device: modprobe rdma_rxe; rdma link add rxe0 type rxe netdev <netdev> (docs/vfio-rdma.md)");
	r->ctx = ibv_open_device(dev);
	r->pd = r->ctx ? ibv_alloc_pd(r->ctx) : NULL;
	r->cq = r->pd ? ibv_create_cq(r->ctx, 16, NULL, NULL, 0) : NULL;
	if (!r->cq)
		fail(2, "%s: open/alloc_pd/create_cq: %s", ibv_get_device_name(dev), strerror(errno));
	struct ibv_qp_init_attr ia = { .send_cq = r->cq, .recv_cq = r->cq, .qp_type = IBV_QPT_RC,
				       .cap = { .max_send_wr = 4, .max_recv_wr = 4, .max_send_sge = 1, .max_recv_sge = 1 } };
	r->qp = ibv_create_qp(r->pd, &ia);
	if (!r->qp)
		fail(2, "ibv_create_qp: %s", strerror(errno));
	/* a RoCE v2 GID of the port: the first non-zero entry */
	r->gid_index = -1;
	for (int i = 0; i < 16 && r->gid_index < 0; i++) {
		union ibv_gid g;
		if (ibv_query_gid(r->ctx, 1, i, &g) == 0 && (g.global.subnet_prefix || g.global.interface_id)) {
			r->gid = g;
			r->gid_index = i;
		}
	}
	if (r->gid_index < 0)
		fail(2, "%s port 1 has no GID (its netdev has no address?)", ibv_get_device_name(dev));
	struct ibv_qp_attr a = { .qp_state = IBV_QPS_INIT, .port_num = 1,
				 .qp_access_flags = IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_READ };
	if (ibv_modify_qp(r->qp, &a, IBV_QP_STATE | IBV_QP_PKEY_INDEX | IBV_QP_PORT | IBV_QP_ACCESS_FLAGS))
		fail(2, "QP to INIT: %s", strerror(errno));
}
static void rdma_connect(struct rdma *r, const struct peer *p)
{
	struct ibv_qp_attr a = { .qp_state = IBV_QPS_RTR, .path_mtu = IBV_MTU_1024, .dest_qp_num = p->qpn,
				 .max_dest_rd_atomic = 1, .min_rnr_timer = 12,
				 .ah_attr = { .is_global = 1, .port_num = 1,
					      .grh = { .dgid = p->gid, .sgid_index = (uint8_t)r->gid_index, .hop_limit = 1 } } };
	if (ibv_modify_qp(r->qp, &a, IBV_QP_STATE | IBV_QP_AV | IBV_QP_PATH_MTU | IBV_QP_DEST_QPN | IBV_QP_RQ_PSN |
				     IBV_QP_MAX_DEST_RD_ATOMIC | IBV_QP_MIN_RNR_TIMER))
		fail(2, "QP to RTR: %s", strerror(errno));
	a = (struct ibv_qp_attr){ .qp_state = IBV_QPS_RTS, .timeout = 14, .retry_cnt = 7, .rnr_retry = 7, .max_rd_atomic = 1 };
	if (ibv_modify_qp(r->qp, &a, IBV_QP_STATE | IBV_QP_TIMEOUT | IBV_QP_RETRY_CNT | IBV_QP_RNR_RETRY | IBV_QP_SQ_PSN |
				     IBV_QP_MAX_QP_RD_ATOMIC))
		fail(2, "QP to RTS: %s", strerror(errno));
}
static void xfer(int fd, void *p, size_t n, int out)
{
	ssize_t got = out ? write(fd, p, n) : read(fd, p, n);
	if (got != (ssize_t)n)
		fail(2, "device process pipe: %s", got < 0 ? strerror(errno) : "closed");
}
/* The second process: carries out RDMA WRITE ('W') and READ ('R') of our MR, one command at a time. */
static void device_loop(struct rdma *r)
{
	static char local[4096];
	struct ibv_mr *mr = ibv_reg_mr(r->pd, local, sizeof local, IBV_ACCESS_LOCAL_WRITE);
	struct cmd c;
	if (!mr)
		_exit(3);
	while (read(to_dev[0], &c, sizeof c) == sizeof c) {
		if (c.op == 'W')
			memcpy(local, c.bytes, c.len);
		else
			memset(local, 0, c.len);
		struct ibv_sge sge = { .addr = (uintptr_t)local, .length = c.len, .lkey = mr->lkey };
		struct ibv_send_wr wr = { .sg_list = &sge, .num_sge = 1, .send_flags = IBV_SEND_SIGNALED,
					  .opcode = c.op == 'W' ? IBV_WR_RDMA_WRITE : IBV_WR_RDMA_READ,
					  .wr.rdma = { .remote_addr = c.addr, .rkey = c.rkey } }, *bad;
		int status = -1;
		if (ibv_post_send(r->qp, &wr, &bad) == 0) {
			struct ibv_wc wc;
			int got = 0;
			/* 5 s of wall clock (5.10's rxe never completes a READ with a dead rkey: -2 then) */
			for (uint64_t end = now_ns() + 5000000000ull; got == 0 && now_ns() < end;) {
				got = ibv_poll_cq(r->cq, 1, &wc);
				if (got == 0)
					usleep(100);
			}
			status = got == 1 ? (int)wc.status : -2;
		}
		memcpy(c.bytes, local, c.len);
		c.op = (char)status;
		if (write(from_dev[1], &c, sizeof c) != sizeof c)
			_exit(3);
	}
	ibv_dereg_mr(mr); /* a clean device process too: no pin outlives its use */
	_exit(0);
}
/* Fork the device process first (before any verbs call), then open the device in both and connect the QPs. */
static void rdma_start(struct rdma *r)
{
	int up[2], down[2];
	struct peer mine, theirs;
	if (pipe(to_dev) || pipe(from_dev) || pipe(up) || pipe(down))
		fail(2, "pipe: %s", strerror(errno));
	device_pid = fork();
	if (device_pid < 0)
		fail(2, "fork: %s", strerror(errno));
	close(device_pid ? to_dev[0] : to_dev[1]); /* each end in one process only: EOF ends device_loop */
	close(device_pid ? from_dev[1] : from_dev[0]);
	rdma_open(r);
	mine.qpn = r->qp->qp_num;
	mine.gid = r->gid;
	xfer(device_pid ? down[1] : up[1], &mine, sizeof mine, 1);
	xfer(device_pid ? up[0] : down[0], &theirs, sizeof theirs, 0);
	rdma_connect(r, &theirs);
	if (device_pid == 0)
		device_loop(r);
	printf("%s: QP %u connected over rxe loopback to the device process %d (QP %u), GID index %d\n",
	       ibv_get_device_name(r->ctx->device), mine.qpn, device_pid, theirs.qpn, r->gid_index);
}
/* The device process writes n bytes at addr (in our MR with rkey) / reads them back; returns the wc status. */
static __attribute__((unused)) int device_write(uint64_t addr, uint32_t rkey, const char *bytes, uint32_t n)
{
	struct cmd c = { .op = 'W', .len = n, .rkey = rkey, .addr = addr };
	memcpy(c.bytes, bytes, n);
	xfer(to_dev[1], &c, sizeof c, 1);
	xfer(from_dev[0], &c, sizeof c, 0);
	return c.op;
}
static __attribute__((unused)) int device_read(uint64_t addr, uint32_t rkey, char *out, uint32_t n)
{
	struct cmd c = { .op = 'R', .len = n, .rkey = rkey, .addr = addr };
	xfer(to_dev[1], &c, sizeof c, 1);
	xfer(from_dev[0], &c, sizeof c, 0);
	memcpy(out, c.bytes, n);
	return c.op;
}
static __attribute__((unused)) void rdma_stop(void)
{
	close(to_dev[1]);
	waitpid(device_pid, NULL, 0);
}
/* ---- end rdma ---- */

#define NPAGES 4
#define ZAP_PAGE 1 /* the 2nd page */

int main(void)
{
	static const char device_bytes[] = "written-by-the-device";
	char seen[sizeof device_bytes];
	struct rdma r;
	uint64_t pfn[NPAGES];

	start();
	rdma_start(&r);
	char *buf = mmap(NULL, NPAGES * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (buf == MAP_FAILED)
		fail(2, "mmap: %s", strerror(errno));
	memset(buf, 'a', NPAGES * PAGE);
	struct ibv_mr *mr = ibv_reg_mr(r.pd, buf, NPAGES * PAGE,
				       IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_READ);
	if (!mr)
		fail(1, "ibv_reg_mr refused: %s (expected: granted)", strerror(errno));
	uint64_t t_pin = now_ns();
	for (int i = 0; i < NPAGES; i++)
		pfn[i] = pfn_of(buf + i * PAGE);
	printf("buffer %p: %d pages registered as MR lkey 0x%x rkey 0x%x (pinned long-term), pfns 0x%lx 0x%lx 0x%lx 0x%lx\n",
	       (void *)buf, NPAGES, mr->lkey, mr->rkey, (unsigned long)pfn[0], (unsigned long)pfn[1],
	       (unsigned long)pfn[2], (unsigned long)pfn[3]);
	fact("pinned", "\"buf\":\"%p\",\"len\":%lu,\"lkey\":%u,\"rkey\":%u,\"pages\":%d,\"pfns\":[%lu,%lu,%lu,%lu],\"t_pin_ns\":%lu",
	     (void *)buf, NPAGES * PAGE, mr->lkey, mr->rkey, NPAGES, (unsigned long)pfn[0], (unsigned long)pfn[1],
	     (unsigned long)pfn[2], (unsigned long)pfn[3], (unsigned long)t_pin);
	HOLD_BEFORE();

	int to_child[2], to_parent[2];
	char c = 0;
	if (pipe(to_child) || pipe(to_parent))
		fail(2, "pipe: %s", strerror(errno));
	uint64_t t_hazard = now_ns();
	pid_t child = fork(); /* no MADV_DONTFORK, no ibv_fork_init */
	if (child < 0)
		fail(2, "fork: %s", strerror(errno));
	if (child == 0) {
		uint64_t at_fork = pfn_of(buf);
		fact("child", "\"parent_pid\":%d,\"child_pfn_at_fork\":%lu", getppid(), (unsigned long)at_fork);
		if (write(to_parent[1], "f", 1) != 1 || read(to_child[0], &c, 1) != 1)
			_exit(2);
		int sees = memcmp(buf, device_bytes, sizeof device_bytes) == 0;
		fact("child_after", "\"child_pfn\":%lu,\"child_sees_device_write\":%s", (unsigned long)pfn_of(buf),
		     sees ? "true" : "false");
		_exit(0);
	}
	if (read(to_parent[0], &c, 1) != 1)
		fail(2, "child did not start");
	uint64_t before = pfn_of(buf);
	memset(buf, 'p', PAGE); /* the parent writes its page after the fork */
	uint64_t after = pfn_of(buf);
	int ws = device_write((uintptr_t)buf, mr->rkey, device_bytes, sizeof device_bytes);
	int visible = memcmp(buf, device_bytes, sizeof device_bytes) == 0;
	int rs = device_read((uintptr_t)buf, mr->rkey, seen, sizeof seen);
	int device_sees = memcmp(seen, device_bytes, sizeof device_bytes) == 0;
	printf("forked child %d without MADV_DONTFORK; the parent wrote page 0 (pfn 0x%lx -> 0x%lx); RDMA WRITE \"%s\" "
	       "(wc %d): the parent reads \"%.21s\" (%s), RDMA READ returns \"%.21s\"\n", child, (unsigned long)before,
	       (unsigned long)after, device_bytes, ws, buf, visible ? "visible" : "LOST", seen);
	fact("after", "\"child_pid\":%d,\"t_hazard_ns\":%lu,\"pfn_before\":%lu,\"pfn_after\":%lu,\"device_bytes\":\"%s\","
	     "\"process_reads\":\"%.21s\",\"device_reads\":\"%.21s\",\"device_write_visible\":%s,\"device_view_intact\":%s,"
	     "\"wc_write\":%d,\"wc_read\":%d", child, (unsigned long)t_hazard, (unsigned long)before, (unsigned long)after,
	     device_bytes, buf, seen, visible ? "true" : "false", device_sees ? "true" : "false", ws, rs);
	if (write(to_child[1], "d", 1) != 1)
		fail(2, "pipe to child: %s", strerror(errno));
	waitpid(child, NULL, 0);
	if (ws || rs || !visible || after != pfn[0] || !device_sees)
		fail(1, "the parent lost the device's view of page 0 (pfn 0x%lx -> 0x%lx, visible %d)", (unsigned long)pfn[0],
		     (unsigned long)after, visible);
	HOLD_AFTER();
	if (ibv_dereg_mr(mr))
		fail(2, "ibv_dereg_mr: %s", strerror(errno));
	rdma_stop();
	fact("done", "\"result\":\"parent-keeps-device-view\"");
	return 0;
}
