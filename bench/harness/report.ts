// Renders the benchmark results: a markdown table (printed, and pasted into docs/benchmarks.md) and a JSON
// document, with a description of the machine the numbers come from.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import os from 'node:os';
import type { Figure, Unit } from './figures.ts';

export interface Machine {
  cpu: string;
  cpus: number;
  memoryGiB: number;
  kernel: string;
  distro: string;
  virtualization: string;
  node: string;
  bpftrace: string;
}

function tryRun(cmd: string, args: string[]): string {
  try {
    return execFileSync(cmd, args, { stdio: ['ignore', 'pipe', 'ignore'], timeout: 10_000 }).toString().trim();
  } catch {
    return 'unknown';
  }
}

export function describeMachine(): Machine {
  let distro = 'unknown';
  try {
    distro = /PRETTY_NAME="([^"]*)"/.exec(readFileSync('/etc/os-release', 'utf8'))?.[1] ?? distro;
  } catch {
    /* not Linux-like: leave unknown */
  }
  const hypervisor = /Hypervisor vendor:\s*(.*)/.exec(tryRun('lscpu', []))?.[1]?.trim();
  const container = tryRun('systemd-detect-virt', ['--container']);
  const virt = [hypervisor ? `${hypervisor} guest` : 'bare metal or unknown', container !== 'unknown' && container !== 'none' ? `${container} container` : '']
    .filter(Boolean)
    .join(', ');
  return {
    cpu: os.cpus()[0]?.model ?? 'unknown',
    cpus: os.cpus().length,
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    kernel: os.release(),
    distro,
    virtualization: virt,
    node: process.version,
    bpftrace: tryRun('bpftrace', ['--version']),
  };
}

export function formatNumber(v: number, unit: Unit): string {
  if (unit === 'x') return `${v.toFixed(3)}×`;
  if (unit === 'events/s') return v < 100 ? `${v.toFixed(1)}/s` : `${Math.round(v).toLocaleString('en-US')}/s`;
  if (unit === 'ms') return `${v < 10 ? v.toFixed(2) : v.toFixed(1)} ms`;
  if (unit === 'IOPS') return `${Math.round(v).toLocaleString('en-US')} IOPS`;
  if (unit === 's') return `${v < 10 ? v.toFixed(3) : v.toFixed(1)} s`;
  if (unit === '%') return `${v < 10 ? v.toFixed(2) : v.toFixed(1)} %`;
  if (unit === 'MiB/GiB') return `${v.toFixed(2)} MiB/GiB`;
  return `${v.toFixed(1)} MiB`;
}

function targetText(f: Figure): string {
  if (f.target) return `${f.target.op === '<=' ? '≤' : '≥'} ${formatNumber(f.target.value, f.unit)}`;
  return f.reference ? `ref. ${f.reference}` : '';
}

function verdict(f: Figure): string {
  if (f.value === null) return 'n/a';
  if (f.inconclusive) return 'inconclusive';
  if (f.met === true) return 'met';
  if (f.met === false) return '**MISSED**';
  return '';
}

/** Markdown table, one row per figure, in FIGURES order. */
export function renderTable(figures: readonly Figure[]): string {
  const rows = [
    '| section | figure | value | spread (min–max) | n | target | verdict | workload CPU-time ratio |',
    '|---|---|---|---|---|---|---|---|',
  ];
  for (const f of figures) {
    const value = f.value === null ? `skipped: ${f.skipped ?? '?'}` : formatNumber(f.value, f.unit);
    const spread = f.lo !== undefined && f.hi !== undefined ? `${formatNumber(f.lo, f.unit)} – ${formatNumber(f.hi, f.unit)}` : '';
    const cpu = f.cpuRatio ? `${formatNumber(f.cpuRatio.value, 'x')} (${formatNumber(f.cpuRatio.lo, 'x')} – ${formatNumber(f.cpuRatio.hi, 'x')})` : '';
    rows.push(`| ${f.section} | ${f.label} | ${value} | ${spread} | ${f.n ?? ''} | ${targetText(f)} | ${verdict(f)} | ${cpu} |`);
  }
  return rows.join('\n');
}

export function renderMachine(m: Machine): string {
  return [
    `- CPU: ${m.cpu}, ${m.cpus} CPUs (${m.virtualization})`,
    `- Memory: ${m.memoryGiB} GiB`,
    `- OS: ${m.distro}, kernel ${m.kernel}`,
    `- Node ${m.node}, ${m.bpftrace}`,
  ].join('\n');
}
