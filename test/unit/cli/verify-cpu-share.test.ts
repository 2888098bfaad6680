// --verify-cpu-share on `record` and `serve`: the same validation, the same help text, and serve hands the value
// to the live collector's options (not with --replay: nothing is captured there).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { RecordArgs, ServeArgs, UsageError, validate } from '../../../cli/args.ts';
import { ServeOptionsSchema } from '../../../cli/compose/serve.ts';
import { main } from '../../../cli/main.ts';

const parse = (command: 'record' | 'serve', value: string): number | string => {
  try {
    const args = command === 'record' ? validate('record', RecordArgs, { db: 'x.db', verifyCpuShare: value }) : validate('serve', ServeArgs, { verifyCpuShare: value });
    return args.verifyCpuShare!;
  } catch (err) {
    assert.ok(err instanceof UsageError);
    return err.message.replace(/^pinwatch (record|serve): /, '');
  }
};

test('record and serve parse --verify-cpu-share alike', () => {
  for (const value of ['0.05', ' .2 ', '1', '0.001', '0', '1.5', 'lots', '-0.1', '5%']) {
    assert.deepEqual(parse('serve', value), parse('record', value), value);
  }
  assert.equal(parse('serve', '0.02'), 0.02);
  assert.match(String(parse('serve', '0')), /^--verify-cpu-share must be greater than 0/);
  assert.match(String(parse('serve', '2')), /^--verify-cpu-share must be at most 1 \(one core\)/);
  assert.match(String(parse('serve', 'lots')), /^--verify-cpu-share must be a share of one core, like 0.05/);
  assert.equal(validate('serve', ServeArgs, {}).verifyCpuShare, undefined, 'default: the collector config (0.05)');
  assert.equal(ServeOptionsSchema.parse({ verifyCpuShare: 0.02 }).verifyCpuShare, 0.02);
});

test('serve: the same help line as record; bad values and --replay exit 2 with one line', async () => {
  const lines: string[] = [];
  const io = { out: (l: string) => lines.push(l), err: (l: string) => lines.push(l) };
  const helpLine = async (command: string) => {
    lines.length = 0;
    await main([command, '--help'], io);
    return lines.join('\n').split('\n').find((l) => l.includes('--verify-cpu-share'))?.replace(/\s+/g, ' ').trim();
  };
  const record = await helpLine('record');
  assert.ok(record?.includes('share of one core the background pagemap sweep'), record);
  assert.equal(await helpLine('serve'), record);
  lines.length = 0;
  assert.equal(await main(['serve', '--verify-cpu-share', '2'], io), 2);
  assert.deepEqual(lines, ['pinwatch serve: --verify-cpu-share must be at most 1 (one core) (got "2")']);
  lines.length = 0;
  assert.equal(await main(['serve', '--verify-cpu-share', '0.1', '--replay', '/etc/hostname'], io), 2);
  assert.match(lines.join('\n'), /--verify-cpu-share \(live capture\) and --replay .* cannot be used together/);
});
