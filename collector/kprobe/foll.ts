// FOLL_* numbering per kernel: renumbered in 6.3 (schema/kernel.ts FOLL_PRE_6_3 / FOLL_6_3). The GUP
// script prints gup_flags raw; this decides which numbering applies and decodes them. BTF settles it
// when the kernel exposes the FOLL_* enum (6.3+ keeps them in an enum), the release string otherwise.
import { FOLL_6_3, FOLL_PRE_6_3 } from '../../schema/kernel.ts';
import type { Btf } from './btf.ts';

export type FollNumbering = typeof FOLL_6_3 | typeof FOLL_PRE_6_3;

/** Parse "6.1.0-56-amd64" / "5.10.0-46-amd64" / "6.12.117+deb12-amd64" into [major, minor]. */
export function kernelVersion(release: string): [number, number] {
  const m = /^(\d+)\.(\d+)/.exec(release);
  if (!m) throw new Error(`cannot parse kernel release "${release}"`);
  return [Number(m[1]), Number(m[2])];
}

export function versionAtLeast(release: string, major: number, minor: number): boolean {
  const [a, b] = kernelVersion(release);
  return a > major || (a === major && b >= minor);
}

export function follNumbering(release: string, btf?: Btf | null): FollNumbering {
  const longterm = btf?.enumValue('FOLL_LONGTERM');
  if (longterm === FOLL_6_3.LONGTERM) return FOLL_6_3;
  if (longterm === FOLL_PRE_6_3.LONGTERM) return FOLL_PRE_6_3;
  return versionAtLeast(release, 6, 3) ? FOLL_6_3 : FOLL_PRE_6_3;
}

export interface FollDecoded {
  write: boolean;
  get: boolean;
  pin: boolean;
  longterm: boolean;
}

export function decodeFoll(flags: number, numbering: FollNumbering): FollDecoded {
  return {
    write: (flags & numbering.WRITE) !== 0,
    get: (flags & numbering.GET) !== 0,
    pin: (flags & numbering.PIN) !== 0,
    longterm: (flags & numbering.LONGTERM) !== 0,
  };
}

/** "WRITE|LONGTERM|PIN" for display. */
export function follNames(flags: number, numbering: FollNumbering): string {
  const names: string[] = [];
  for (const [k, v] of Object.entries(numbering)) if (flags & v) names.push(k);
  return names.join('|') || '0';
}
