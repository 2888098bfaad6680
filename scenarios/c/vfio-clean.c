/* pinwatch scenario vfio-clean: control: a user buffer is DMA-mapped with VFIO_IOMMU_MAP_DMA,
 * QEMU's edu device DMAs into it through the IOMMU, the process reads the bytes, the device reads them back,
 * then VFIO_IOMMU_UNMAP_DMA and munmap. Nothing moves a pinned page: a collector must stay silent.
 *
 * Self-contained on purpose (no shared header): it can be pasted into a bug report.
 * Build: cc -O2 -Wall -Werror -o vfio-clean vfio-clean.c   Run as root (pagemap pfns, /dev/vfio).
 * Needs: an edu device bound to vfio-pci behind an IOMMU (the kernel guests of `npm run test:kernels`, or
 * docs/vfio-rdma.md on a real host); exits 2 without one.
 * Exit: 0 = the kernel behaved as expected; 1 = it did not (message says how); 2 = cannot run here.
 * Output: plain words, plus `PINWATCH {json}` fact lines for tests, the collector and the benchmark. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <linux/vfio.h>

static const char *scenario = "vfio-clean";

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
/* ---- pinwatch scaffolding: vfio (identical in every vfio scenario) ---- */
/* QEMU's `edu` PCI device (1234:11e8, docs/specs/edu.txt) bound to vfio-pci, behind an IOMMU: a real DMA
 * engine. VFIO type1: MAP_DMA pins the user pages long-term (vfio_pin_pages_remote) and maps them at an
 * iova; edu copies between its own 4 KiB buffer (device address 0x40000) and an iova through the IOMMU.
 * The device is found by PINWATCH_VFIO_DEVICE (a PCI address) or as the first 1234:11e8 bound to vfio-pci. */
#define EDU_DMA_SRC 0x80
#define EDU_DMA_DST 0x88
#define EDU_DMA_CNT 0x90
#define EDU_DMA_CMD 0x98
#define EDU_CMD_RUN 0x1
#define EDU_CMD_TO_RAM 0x2 /* direction: edu buffer -> RAM; clear: RAM -> edu buffer */
#define EDU_BUF 0x40000    /* edu's DMA buffer in its own address space, 4 KiB */
#define EDU_BUF_SIZE 4096
#define STAGE_IOVA 0x100000ull /* 2 pages: [0] bytes for the device to write, [1] the device's read-back */
struct edu {
	int container, group, dev;
	char bdf[256];
	uint64_t bar0, config; /* region offsets in the device fd */
	char *stage;           /* the staging pages, DMA-mapped at STAGE_IOVA */
};
static int sysfs_read(const char *path, char *out, size_t n)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t got = fd < 0 ? -1 : read(fd, out, n - 1);
	if (fd >= 0)
		close(fd);
	if (got <= 0)
		return -1;
	out[got] = 0;
	out[strcspn(out, "\n")] = 0;
	return 0;
}
static int edu_find(char *bdf, size_t n)
{
	const char *want = getenv("PINWATCH_VFIO_DEVICE");
	char p[512], v[64], d[64], drv[512];
	DIR *dir = opendir("/sys/bus/pci/devices");
	struct dirent *de;
	if (!dir)
		return -1;
	while ((de = readdir(dir))) {
		if (de->d_name[0] == '.' || (want && *want && strcmp(want, de->d_name)))
			continue;
		snprintf(p, sizeof p, "/sys/bus/pci/devices/%s/vendor", de->d_name);
		if (sysfs_read(p, v, sizeof v))
			continue;
		snprintf(p, sizeof p, "/sys/bus/pci/devices/%s/device", de->d_name);
		if (sysfs_read(p, d, sizeof d) || strcmp(v, "0x1234") || strcmp(d, "0x11e8"))
			continue;
		snprintf(p, sizeof p, "/sys/bus/pci/devices/%s/driver", de->d_name);
		ssize_t l = readlink(p, drv, sizeof drv - 1);
		drv[l > 0 ? l : 0] = 0;
		if (!strstr(drv, "vfio-pci"))
			continue;
		snprintf(bdf, n, "%s", de->d_name);
		closedir(dir);
		return 0;
	}
	closedir(dir);
	return -1;
}
static void edu_wr(struct edu *e, uint64_t reg, uint32_t v)
{
	/* 4-byte accesses: vfio-pci's read/write path has no 8-byte MMIO before 6.11; edu takes the 32-bit
	 * value as the whole register (its iovas are below its 28-bit DMA mask anyway) */
	if (pwrite(e->dev, &v, 4, (off_t)(e->bar0 + reg)) != 4)
		fail(2, "edu register 0x%lx write: %s", (unsigned long)reg, strerror(errno));
}
static uint32_t edu_rd(struct edu *e, uint64_t reg)
{
	uint32_t v;
	if (pread(e->dev, &v, 4, (off_t)(e->bar0 + reg)) != 4)
		fail(2, "edu register 0x%lx read: %s", (unsigned long)reg, strerror(errno));
	return v;
}
/* One edu DMA between its buffer and an iova; waits for it (edu runs it from a 100 ms timer). */
static void edu_dma(struct edu *e, uint64_t iova, uint32_t n, int to_ram)
{
	edu_wr(e, EDU_DMA_SRC, (uint32_t)(to_ram ? EDU_BUF : iova));
	edu_wr(e, EDU_DMA_DST, (uint32_t)(to_ram ? iova : EDU_BUF));
	edu_wr(e, EDU_DMA_CNT, n);
	edu_wr(e, EDU_DMA_CMD, EDU_CMD_RUN | (to_ram ? EDU_CMD_TO_RAM : 0));
	for (int i = 0; i < 2000 && (edu_rd(e, EDU_DMA_CMD) & EDU_CMD_RUN); i++)
		usleep(5000);
	if (edu_rd(e, EDU_DMA_CMD) & EDU_CMD_RUN)
		fail(2, "edu DMA did not finish in 10 s");
}
static int dma_map(struct edu *e, void *vaddr, size_t len, uint64_t iova)
{
	struct vfio_iommu_type1_dma_map m = { .argsz = sizeof m, .flags = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE,
					      .vaddr = (uintptr_t)vaddr, .iova = iova, .size = len };
	return ioctl(e->container, VFIO_IOMMU_MAP_DMA, &m) ? -errno : 0;
}
static int dma_unmap(struct edu *e, uint64_t iova, size_t len)
{
	struct vfio_iommu_type1_dma_unmap u = { .argsz = sizeof u, .iova = iova, .size = len };
	return ioctl(e->container, VFIO_IOMMU_UNMAP_DMA, &u) ? -errno : 0;
}
/* Open container, group and device, set the type1 IOMMU, enable bus mastering, map the staging pages. */
static void edu_open(struct edu *e)
{
	char p[512], grp[512];
	if (edu_find(e->bdf, sizeof e->bdf))
		fail(2, "no edu device (1234:11e8) bound to vfio-pci: boot QEMU with -device intel-iommu -device edu "
			"and intel_iommu=on, then echo 1234 11e8 > /sys/bus/pci/drivers/vfio-pci/new_id (docs/vfio-rdma.md)");
	snprintf(p, sizeof p, "/sys/bus/pci/devices/%s/iommu_group", e->bdf);
	ssize_t l = readlink(p, grp, sizeof grp - 1);
	if (l <= 0)
		fail(2, "%s has no IOMMU group (IOMMU off?)", e->bdf);
	grp[l] = 0;
	snprintf(p, sizeof p, "/dev/vfio/%s", strrchr(grp, '/') + 1);
	e->container = open("/dev/vfio/vfio", O_RDWR | O_CLOEXEC);
	e->group = open(p, O_RDWR | O_CLOEXEC);
	if (e->container < 0 || e->group < 0)
		fail(2, "open /dev/vfio/vfio or %s: %s", p, strerror(errno));
	struct vfio_group_status st = { .argsz = sizeof st };
	if (ioctl(e->group, VFIO_GROUP_GET_STATUS, &st) || !(st.flags & VFIO_GROUP_FLAGS_VIABLE))
		fail(2, "IOMMU group %s is not viable (another device of the group is not bound to vfio)", p);
	if (ioctl(e->group, VFIO_GROUP_SET_CONTAINER, &e->container))
		fail(2, "VFIO_GROUP_SET_CONTAINER: %s", strerror(errno));
	if (ioctl(e->container, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU) && ioctl(e->container, VFIO_SET_IOMMU, VFIO_TYPE1_IOMMU))
		fail(2, "VFIO_SET_IOMMU (type1): %s", strerror(errno));
	e->dev = ioctl(e->group, VFIO_GROUP_GET_DEVICE_FD, e->bdf);
	if (e->dev < 0)
		fail(2, "VFIO_GROUP_GET_DEVICE_FD %s: %s", e->bdf, strerror(errno));
	struct vfio_region_info r = { .argsz = sizeof r, .index = VFIO_PCI_BAR0_REGION_INDEX };
	if (ioctl(e->dev, VFIO_DEVICE_GET_REGION_INFO, &r))
		fail(2, "BAR0 region info: %s", strerror(errno));
	e->bar0 = r.offset;
	r = (struct vfio_region_info){ .argsz = sizeof r, .index = VFIO_PCI_CONFIG_REGION_INDEX };
	if (ioctl(e->dev, VFIO_DEVICE_GET_REGION_INFO, &r))
		fail(2, "config region info: %s", strerror(errno));
	e->config = r.offset;
	uint16_t cmd;
	if (pread(e->dev, &cmd, 2, (off_t)(e->config + 4)) != 2)
		fail(2, "PCI command read: %s", strerror(errno));
	cmd |= 0x6; /* memory space + bus master: edu's DMA goes nowhere without it */
	if (pwrite(e->dev, &cmd, 2, (off_t)(e->config + 4)) != 2)
		fail(2, "PCI command write: %s", strerror(errno));
	if ((edu_rd(e, 0) & 0xff) != 0xed)
		fail(2, "%s does not identify as edu (0x%x)", e->bdf, edu_rd(e, 0));
	e->stage = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (e->stage == MAP_FAILED)
		fail(2, "mmap staging pages: %s", strerror(errno));
	/* the helper pages are not the scenario's buffer: a fork must not inherit them (MADV_DONTFORK) */
	if (madvise(e->stage, 2 * PAGE, MADV_DONTFORK))
		fail(2, "madvise(MADV_DONTFORK) of the staging pages: %s", strerror(errno));
	memset(e->stage, 0, 2 * PAGE);
	int err = dma_map(e, e->stage, 2 * PAGE, STAGE_IOVA);
	if (err)
		fail(2, "VFIO_IOMMU_MAP_DMA of the staging pages: %s", strerror(-err));
	printf("edu %s: container fd %d, group %s, device fd %d; staging pages %p at iova 0x%llx\n", e->bdf,
	       e->container, p, e->dev, (void *)e->stage, STAGE_IOVA);
}
/* The device writes n bytes at `iova`: RAM (staging page 0, filled by the CPU) -> edu buffer -> iova. */
static __attribute__((unused)) void device_write(struct edu *e, uint64_t iova, const char *bytes, uint32_t n)
{
	memcpy(e->stage, bytes, n);
	edu_dma(e, STAGE_IOVA, n, 0);
	edu_dma(e, iova, n, 1);
}
/* What the device reads at `iova` (n bytes into out): iova -> edu buffer -> staging page 1 -> CPU. The edu
 * buffer is zeroed first, so a read the IOMMU refuses (iova not mapped) shows as zeroes, not stale bytes. */
static __attribute__((unused)) void device_read(struct edu *e, uint64_t iova, char *out, uint32_t n)
{
	memset(e->stage + PAGE, 0, n);
	edu_dma(e, STAGE_IOVA + PAGE, n, 0);
	edu_dma(e, iova, n, 0);
	edu_dma(e, STAGE_IOVA + PAGE, n, 1);
	memcpy(out, e->stage + PAGE, n);
}
static __attribute__((unused)) void edu_close(struct edu *e)
{
	int err = dma_unmap(e, STAGE_IOVA, 2 * PAGE);
	if (err)
		fail(2, "VFIO_IOMMU_UNMAP_DMA of the staging pages: %s", strerror(-err));
	close(e->dev);
	close(e->group);
	close(e->container);
}
/* ---- end vfio ---- */

#define NPAGES 4
#define TARGET_IOVA 0x200000ull

int main(void)
{
	static const char device_bytes[] = "written-by-the-device";
	char seen[sizeof device_bytes];
	struct edu e;
	uint64_t pfn[NPAGES];

	start();
	edu_open(&e);
	char *buf = mmap(NULL, NPAGES * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (buf == MAP_FAILED)
		fail(2, "mmap: %s", strerror(errno));
	memset(buf, 'a', NPAGES * PAGE);
	int err = dma_map(&e, buf, NPAGES * PAGE, TARGET_IOVA);
	if (err)
		fail(1, "VFIO_IOMMU_MAP_DMA refused: %s (expected: granted)", strerror(-err));
	uint64_t t_pin = now_ns();
	for (int i = 0; i < NPAGES; i++)
		pfn[i] = pfn_of(buf + i * PAGE);
	printf("buffer %p: %d pages DMA-mapped at iova 0x%llx (pinned long-term), pfns 0x%lx 0x%lx 0x%lx 0x%lx\n",
	       (void *)buf, NPAGES, TARGET_IOVA, (unsigned long)pfn[0], (unsigned long)pfn[1], (unsigned long)pfn[2],
	       (unsigned long)pfn[3]);
	fact("pinned", "\"buf\":\"%p\",\"len\":%lu,\"iova\":\"0x%llx\",\"pages\":%d,\"pfns\":[%lu,%lu,%lu,%lu],\"t_pin_ns\":%lu",
	     (void *)buf, NPAGES * PAGE, TARGET_IOVA, NPAGES, (unsigned long)pfn[0], (unsigned long)pfn[1],
	     (unsigned long)pfn[2], (unsigned long)pfn[3], (unsigned long)t_pin);
	HOLD_BEFORE();

	char *use = buf + PAGE;
	device_write(&e, TARGET_IOVA + PAGE, device_bytes, sizeof device_bytes);
	int visible = memcmp(use, device_bytes, sizeof device_bytes) == 0;
	device_read(&e, TARGET_IOVA + PAGE, seen, sizeof seen);
	int device_sees = memcmp(seen, device_bytes, sizeof device_bytes) == 0;
	int moved = 0;
	for (int i = 0; i < NPAGES; i++)
		moved += pfn_of(buf + i * PAGE) != pfn[i];
	printf("edu wrote \"%s\" at iova 0x%llx: the process reads \"%.21s\" at %p (%s); the device reads back \"%.21s\"\n",
	       device_bytes, TARGET_IOVA + PAGE, use, (void *)use, visible ? "visible" : "LOST", seen);
	fact("used", "\"use_addr\":\"%p\",\"device_bytes\":\"%s\",\"process_reads\":\"%.21s\",\"device_reads\":\"%.21s\","
	     "\"device_write_visible\":%s,\"device_view_intact\":%s,\"pages_moved\":%d",
	     (void *)use, device_bytes, use, seen, visible ? "true" : "false", device_sees ? "true" : "false", moved);
	if (!visible || !device_sees || moved)
		fail(1, "a DMA-mapped buffer nobody touched: the device write must be visible and no pfn may change");
	HOLD_AFTER();

	err = dma_unmap(&e, TARGET_IOVA, NPAGES * PAGE);
	if (err)
		fail(2, "VFIO_IOMMU_UNMAP_DMA: %s", strerror(-err));
	printf("VFIO_IOMMU_UNMAP_DMA iova 0x%llx: pins dropped\n", TARGET_IOVA);
	edu_close(&e);
	munmap(buf, NPAGES * PAGE);
	fact("done", "\"result\":\"clean\"");
	return 0;
}
