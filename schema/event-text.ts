// The words an event is described in (event-kinds.ts' sentences, the web's tables): hex addresses and pfns,
// byte sizes, io_uring opcodes, userfaultfd modes, x86 fault error codes, -errno returns.
import {
  IORING_REGISTER,
  IORING_REGISTER_USE_REGISTERED_RING,
  PF_PROT,
  PF_USER,
  PF_WRITE,
  UFFDIO_REGISTER_MODE_MINOR,
  UFFDIO_REGISTER_MODE_MISSING,
  UFFDIO_REGISTER_MODE_WP,
  errnoName,
} from './kernel.ts';

export function hex(n: number | null | undefined): string {
  if (n === null || n === undefined || !Number.isFinite(n)) return '—';
  return n < 0 ? `-0x${(-n).toString(16)}` : `0x${n.toString(16)}`;
}

export function bytes(n: number): string {
  if (n >= 1 << 30 && n % (1 << 30) === 0) return `${n / (1 << 30)} GiB`;
  if (n >= 1 << 20 && n % (1 << 20) === 0) return `${n / (1 << 20)} MiB`;
  if (n >= 1024 && n % 1024 === 0) return `${n / 1024} KiB`;
  return `${n} B`;
}

const IORING_NAMES = new Map<number, string>(Object.entries(IORING_REGISTER).map(([k, v]) => [v, k === 'BUFFERS' ? 'REGISTER_BUFFERS' : k]));
export function ioringOp(opcode: number): string {
  const op = opcode & ~IORING_REGISTER_USE_REGISTERED_RING;
  return IORING_NAMES.get(op) ?? `opcode ${op}`;
}

export function uffdModes(mode: number): string {
  const m: string[] = [];
  if (mode & UFFDIO_REGISTER_MODE_MISSING) m.push('MISSING');
  if (mode & UFFDIO_REGISTER_MODE_WP) m.push('WP');
  if (mode & UFFDIO_REGISTER_MODE_MINOR) m.push('MINOR');
  return m.join('|') || '0';
}

export function faultKind(errorCode: number): string {
  const w = errorCode & PF_WRITE ? 'write' : 'read';
  const p = errorCode & PF_PROT ? 'present (protection: do_wp_page)' : 'not present';
  return `${w} fault, ${p}${errorCode & PF_USER ? '' : ', kernel mode'}`;
}

/** A syscall return: its errno name when negative; '?' when a damaged row has no number there. */
export function ret(r: unknown): string {
  return typeof r === 'number' ? errnoName(r) : '?';
}

/** A return that is an address on success (mmap, mremap). */
export function addrRet(r: number): string {
  return r < 0 ? ret(r) : hex(r);
}

/** Flags as 0x-hex. */
export function flags(n: number): string {
  return `0x${n.toString(16)}`;
}
