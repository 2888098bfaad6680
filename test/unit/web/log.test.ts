// Log format: JSON under systemd (JOURNAL_STREAM names stderr) or piped, a readable line on a terminal.
import assert from 'node:assert/strict';
import { fstatSync } from 'node:fs';
import { test } from 'node:test';
import { humanLine, logFormat } from '../../../collector/service/log.ts';

test('JSON when stderr is the journal stream, human on a terminal, JSON when piped', () => {
  const st = fstatSync(2);
  assert.equal(logFormat({ JOURNAL_STREAM: `${st.dev}:${st.ino}` }, 2, true), 'json');
  assert.equal(logFormat({ JOURNAL_STREAM: '1:2' }, 2, true), 'human', 'stderr redirected elsewhere by the user');
  assert.equal(logFormat({}, 2, true), 'human');
  assert.equal(logFormat({}, 2, false), 'json');
  assert.equal(logFormat({ PINWATCH_LOG_FORMAT: 'json' }, 2, true), 'json');
});

test('a human line: time, level, name, message, then the fields', () => {
  const line = humanLine(JSON.stringify({ level: 40, time: Date.UTC(2026, 0, 1, 8, 12, 1), pid: 1, hostname: 'h', name: 'pinwatch-serve', msg: 'the web process died', code: 1, why: 'two words' }));
  assert.match(line, /^\d\d:\d\d:\d\d WARN  pinwatch-serve: the web process died \(code=1 why="two words"\)\n$/);
});
