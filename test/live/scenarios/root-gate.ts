// Gate for the scenario live tests: they need root (the programs read pfns from /proc/self/pagemap, which
// the kernel hides from non-root) but not bpftrace. Outside CI a non-root run skips with that reason; with
// CI=true it is a failure, so a green CI means the scenarios really ran on the kernel.

export const ROOT_REASON =
  'scenario live tests need root: the programs read pfns from /proc/self/pagemap (hidden from non-root) and register io_uring buffers';

export function rootGate(): { skip: string | false } {
  if (process.getuid?.() === 0) return { skip: false };
  if (process.env.CI === 'true') throw new Error(`CI=true and not root: ${ROOT_REASON}`);
  return { skip: ROOT_REASON };
}
