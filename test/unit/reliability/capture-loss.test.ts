// Lost events per kind (collector/capture-loss.ts): the kernel's cumulative count of each event printf against
// the lines that arrived, judged one print late (lines still in another CPU's buffer are not lost), settled when
// the program ends, carried across restarts.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CaptureLoss } from '../../../collector/capture-loss.ts';

test('a print is judged when the next one comes; in-flight lines are not lost; the END print is judged at settle', () => {
  const arrived: Record<string, number> = {};
  const loss = new CaptureLoss(() => arrived);
  loss.restart();
  assert.equal(loss.counted({ munmap: 100, madvise: 10 }), false, 'nothing judged yet');
  arrived.munmap = 90; // 10 still in flight when the next print comes: they arrive later
  arrived.madvise = 10;
  assert.equal(loss.counted({ munmap: 200, madvise: 10 }), true);
  assert.deepEqual(loss.byKind(), { munmap: 10 });
  arrived.munmap = 195; // the late 10 arrived, 5 of the next second's are gone
  assert.equal(loss.counted({ munmap: 200, madvise: 12 }), true);
  assert.deepEqual(loss.byKind(), { munmap: 5 });
  arrived.madvise = 12;
  assert.equal(loss.settle(), false, 'END: the last print, nothing more changed');
  assert.deepEqual(loss.byKind(), { munmap: 5 });
  assert.equal(loss.total(), 5);
});

test('a restart folds the old program into the carried loss; the new one counts from zero against lines since', () => {
  const arrived: Record<string, number> = { fork: 1000 }; // lines of an earlier program
  const loss = new CaptureLoss(() => arrived);
  loss.restart();
  loss.counted({ fork: 50 });
  arrived.fork = 1040;
  loss.counted({ fork: 60 }); // judges 50 against 40 arrived since the start
  assert.deepEqual(loss.byKind(), { fork: 10 });
  // killed: its last print (60) is judged once its output is drained
  arrived.fork = 1045;
  assert.equal(loss.settle(), true);
  assert.deepEqual(loss.byKind(), { fork: 15 });
  loss.restart();
  loss.counted({ fork: 7, exit: 3 });
  arrived.fork = 1051;
  arrived.exit = 1;
  loss.settle();
  assert.deepEqual(loss.byKind(), { fork: 16, exit: 2 });
});
