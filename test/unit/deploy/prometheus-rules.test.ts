// The shipped Prometheus rules, scrape config and Alertmanager route (deploy/prometheus/) pass Debian's own
// checkers: `promtool check rules`, `promtool test rules` (tests/*.yml: each alert fires on its problem and
// stays silent on a healthy host), `promtool check config`, `amtool check-config`.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, test } from 'node:test';
import { promtool, toolGate } from '../../support/prometheus-tools.ts';

const DIR = fileURLToPath(new URL('../../../deploy/prometheus', import.meta.url));

describe('deploy/prometheus', () => {
  test('promtool check rules', toolGate('promtool'), () => {
    const r = promtool(['check', 'rules', join(DIR, 'pinwatch.rules.yml')]);
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, /SUCCESS: 6 rules found/);
  });

  test('promtool test rules: every alert fires on its problem, none on a healthy host', toolGate('promtool'), () => {
    const files = readdirSync(join(DIR, 'tests')).filter((f) => f.endsWith('.yml'));
    assert.ok(files.length > 0);
    const r = promtool(['test', 'rules', ...files.map((f) => join(DIR, 'tests', f))]);
    assert.equal(r.code, 0, r.out);
    assert.doesNotMatch(r.out, /FAILED/);
  });

  test('promtool check config (the example scrape config with the rules)', toolGate('promtool'), () => {
    const r = promtool(['check', 'config', join(DIR, 'prometheus.yml')]);
    assert.equal(r.code, 0, r.out);
  });

  test('amtool check-config (the Alertmanager route to the dashboard webhook)', toolGate('amtool'), () => {
    const out = execFileSync('amtool', ['check-config', join(DIR, 'alertmanager.yml')], { encoding: 'utf8' });
    assert.match(out, /SUCCESS/);
  });
});
