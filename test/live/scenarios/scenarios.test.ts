// Every scenario, built and run as root on this kernel, exits 0 and prints the facts that make it the
// hazard it claims to be (e.g. uring-dontneed: the pfn at the zapped address changed while registered).
// Holds are shortened (the timing contract has its own test in timing.test.ts).
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  SCENARIOS,
  expectedAnomalies,
  factNumber,
  factValue,
  runScenario,
  type RunResult,
} from '../../../scenarios/index.ts';
import { rootGate } from './root-gate.ts';
import { DEVICE_CHECKS } from '../../support/device-checks.ts';
import { missingDevice } from '../../../scenarios/index.ts';

const PAGE = 4096;
const FAST = { PINWATCH_HOLD_BEFORE_MS: '20', PINWATCH_HOLD_AFTER_MS: '20' };
const EFAULT = 14;
const EOPNOTSUPP = 95;
const EBUSY = 16;
const EAGAIN = 11;

const num = (r: RunResult, key: string, step?: string) => factNumber(r.facts, key, step);
const val = (r: RunResult, key: string, step?: string) => factValue(r.facts, key, step);

/** What each scenario must have printed on this kernel (6.18). */
const CHECKS: Record<string, (r: RunResult) => void> = {
  'uring-clean'(r) {
    assert.equal(val(r, 'device_write_visible'), true);
    assert.equal(num(r, 'pages_moved'), 0);
    assert.equal(num(r, 'use_addr'), num(r, 'buf') + PAGE);
  },
  'uring-dontneed'(r) {
    const pfns = val(r, 'pfns') as number[];
    assert.equal(num(r, 'zap_addr'), num(r, 'buf') + PAGE, 'the 2nd page is zapped');
    assert.equal(num(r, 'pfn_before'), pfns[1], 'pfn_before is the pinned pfn of that page');
    assert.notEqual(num(r, 'pfn_after'), num(r, 'pfn_before'), 'the page table maps a new page');
    assert.ok(num(r, 'pfn_after') > 0);
    assert.equal(val(r, 'present_after_zap'), false, 'MADV_DONTNEED cleared the PTE');
    assert.equal(val(r, 'device_write_visible'), false, 'the device wrote into the old page');
    assert.equal(val(r, 'result', 'done'), 'diverged');
  },
  'uring-munmap'(r) {
    const pfns = val(r, 'pfns') as number[];
    assert.equal(num(r, 'unmap_addr'), num(r, 'buf') + PAGE);
    assert.equal(val(r, 'present_after'), false);
    assert.equal(num(r, 'pinned_pfn'), pfns[1]);
    assert.equal(num(r, 'pinned_pfn_mapcount'), 0, 'no page table maps the pinned page');
    assert.equal(num(r, 'device_write_res'), 22, 'READ_FIXED still writes the 22 bytes into the leaked page');
  },
  'uring-fork'(r) {
    const child = num(r, 'child_pid');
    assert.equal(num(r, 'pid', 'child'), child, 'the child prints its own facts');
    assert.equal(num(r, 'parent_pid', 'child'), r.pid);
    assert.equal(num(r, 'pfn_after', 'after'), num(r, 'pfn_before', 'after'), 'the parent keeps its pinned page');
    assert.equal(num(r, 'pfn_before', 'after'), (val(r, 'pfns') as number[])[0]);
    assert.equal(num(r, 'pages_moved'), 0);
    assert.notEqual(num(r, 'child_pfn_at_fork'), num(r, 'pfn_before', 'after'), '5.9+: the child gets a copy at fork');
    assert.equal(val(r, 'device_write_visible'), true);
  },
  'uring-fork-dontfork'(r) {
    assert.equal(val(r, 'buffer_mapped_in_child'), false);
    assert.equal(num(r, 'pid', 'child'), num(r, 'child_pid'));
    assert.equal(num(r, 'pages_moved'), 0);
    assert.equal(val(r, 'device_write_visible'), true);
  },
  'uring-mremap'(r) {
    assert.equal(num(r, 'old_addr'), num(r, 'buf'));
    assert.notEqual(num(r, 'new_addr'), num(r, 'old_addr'));
    assert.equal(num(r, 'pages_followed'), 4);
    assert.equal(num(r, 'pfn_after', 'hazard'), num(r, 'pfn_before', 'hazard'));
    assert.equal(num(r, 'pfn_before', 'hazard'), (val(r, 'pfns') as number[])[0]);
    assert.equal(val(r, 'device_write_visible'), true);
  },
  'shmem-uffd-collapse'(r) {
    assert.equal(num(r, 'range_start') % (2 << 20), 0, '2 MiB aligned');
    assert.equal(num(r, 'present_pages'), 256);
    assert.equal(num(r, 'holes'), 256);
    assert.equal(num(r, 'collapse_errno', 'collapse_armed'), EBUSY, 'refused while the userfaultfd is armed');
    assert.equal(val(r, 'same_page', 'refault'), true, 'the refused collapse leaves the pages in the page cache');
    assert.equal(num(r, 'collapse_errno', 'collapse_unarmed'), 0, 'collapses after UFFDIO_UNREGISTER');
    assert.equal(num(r, 'present_after', 'collapse_unarmed'), 512, 'holes filled');
    assert.equal(val(r, 'thp', 'collapse_unarmed'), true);
  },
  'collapse-pinned-anon'(r) {
    assert.equal(num(r, 'range_start') % (2 << 20), 0, '2 MiB aligned');
    assert.equal(num(r, 'pinned_addr'), num(r, 'range_start') + 16 * PAGE, 'pages 16-19 are pinned');
    assert.equal(num(r, 'collapse_errno', 'collapse_pinned'), EAGAIN, 'refused while pinned');
    assert.equal(num(r, 'pfn_after', 'collapse_pinned'), num(r, 'pfn_before', 'collapse_pinned'));
    assert.equal(num(r, 'collapse_errno', 'collapse_unpinned'), 0, 'collapses once unpinned');
    assert.equal(val(r, 'thp', 'collapse_unpinned'), true);
    assert.equal(num(r, 'pfn_after', 'collapse_unpinned'), num(r, 'hpfn') + 16);
  },
  'uring-file-shared'(r) {
    assert.notEqual(val(r, 'fs'), 'tmpfs');
    assert.equal(val(r, 'granted'), false, '6.5+ refuses long-term pins of writable file mappings');
    assert.ok([EFAULT, EOPNOTSUPP].includes(num(r, 'register_errno')), `EFAULT or EOPNOTSUPP, got ${num(r, 'register_errno')}`);
    assert.equal(val(r, 'result', 'done'), 'refused');
  },
  'uring-memfd'(r) {
    assert.equal(num(r, 'register_errno'), 0, 'shmem may be pinned long-term');
    assert.equal(val(r, 'device_write_visible'), true);
    assert.equal(num(r, 'pages_moved'), 0);
  },
  'odirect-read'(r) {
    assert.equal(num(r, 'bytes'), 4 * PAGE);
    assert.equal(val(r, 'device_write_visible'), true, 'the disk wrote into the process\'s own pages');
    assert.equal(num(r, 'pages_moved'), 0);
  },
  'vmsplice-pageout'(r) {
    const result = val(r, 'result', 'done');
    // 6.18 never diverges; without swap the page is not even unmapped.
    assert.ok(result === 'not-unmapped' || result === 'unmapped-same-page', `outcome ${String(result)}`);
    assert.equal(val(r, 'pipe_bytes'), 'new', 'the pipe and the process see the same page');
    assert.equal(num(r, 'pfn_after', 'done'), num(r, 'pfn_before', 'pinned'));
    if (num(r, 'swap_devices') === 0) assert.equal(result, 'not-unmapped');
  },
};

describe('scenarios on this kernel (live, root)', rootGate(), () => {
  test('every catalog scenario has checks here', () => {
    assert.deepEqual(Object.keys({ ...CHECKS, ...DEVICE_CHECKS }).sort(), SCENARIOS.map((s) => s.name).sort());
    for (const s of SCENARIOS) assert.equal(s.name in DEVICE_CHECKS, s.needs !== undefined, `${s.name}: device checks iff it needs a device`);
  });

  for (const s of SCENARIOS) {
    const missing = missingDevice(s);
    if (missing) {
      // Not skipped: the program must refuse with exit 2 and say what is missing; test:kernels judges it.
      test(`${s.name}: exits 2 here, ${missing}`, async () => {
        const r = await runScenario(s.name, { env: FAST });
        assert.equal(r.exitCode, 2, r.output);
        assert.match(r.output, /FAIL .*exit 2.*no edu device|no RDMA device/);
      });
      continue;
    }
    test(`${s.name}: exits 0 and prints its facts`, async () => {
      const r = await runScenario(s.name, { env: FAST });
      assert.equal(r.exitCode, 0, `exit ${r.exitCode}:\n${r.output}`);
      try {
        assert.ok(r.pid > 0);
        assert.equal(r.facts[0]?.step, 'start');
        assert.match(String(r.facts[0]?.kernel), /^\d+\.\d+/);
        assert.equal(r.facts.at(-1)?.step, 'done');
        const children = new Set(r.facts.filter((f) => f.step === 'child').map((f) => f.pid));
        for (const f of r.facts) {
          assert.equal(f.scenario, s.name);
          assert.ok(f.pid === r.pid || children.has(f.pid), `fact from an unknown pid: ${JSON.stringify(f)}`);
        }
        if (!s.silent) assert.ok(num(r, 't_hazard_ns') > 0);
        // The addresses the collector must report resolve to page-aligned addresses of this run.
        for (const e of expectedAnomalies(s, r.facts)) assert.ok(e.addr > 0);
        (CHECKS[s.name] ?? ((x: RunResult) => DEVICE_CHECKS[s.name](x.facts)))(r);
      } catch (err) {
        (err as Error).message += `\nscenario output:\n${r.output}`;
        throw err;
      }
    });
  }
});
