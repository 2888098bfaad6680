// Debian's prometheus and prometheus-alertmanager, started by a test on loopback ports with short intervals,
// configs and data in a temp dir; stopped by their handles.
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { stopChild } from '../../support/stop-child.ts';

export async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

export interface Daemon {
  url: string;
  child: ChildProcess;
  output(): string;
  stop(): Promise<void>;
}

async function startDaemon(cmd: string, args: string[], url: string, ready: string): Promise<Daemon> {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.setEncoding('utf8').on('data', (c: string) => (out += c));
  child.stderr!.setEncoding('utf8').on('data', (c: string) => (out += c));
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`${cmd} exited (${child.exitCode}):\n${out}`);
    try {
      if ((await fetch(url + ready, { signal: AbortSignal.timeout(1000) })).ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`${cmd} not ready after 60 s:\n${out}`);
    await new Promise((r) => setTimeout(r, 250));
  }
  return {
    url,
    child,
    output: () => out,
    async stop() {
      await stopChild(child, exited, { graceMs: 10_000 });
    },
  };
}

export async function startAlertmanager(dir: string, webhookUrl: string): Promise<Daemon> {
  const port = await freePort();
  const config = join(dir, 'alertmanager.yml');
  writeFileSync(
    config,
    [
      'route:',
      '  receiver: dashboard',
      '  group_by: [alertname, host]',
      '  group_wait: 1s',
      '  group_interval: 1s',
      '  repeat_interval: 1h',
      'receivers:',
      '  - name: dashboard',
      '    webhook_configs:',
      `      - url: ${webhookUrl}`,
      '        send_resolved: true',
      '',
    ].join('\n'),
  );
  return startDaemon(
    'prometheus-alertmanager',
    [`--config.file=${config}`, `--storage.path=${join(dir, 'am-data')}`, `--web.listen-address=127.0.0.1:${port}`, '--cluster.listen-address=', '--log.level=warn'],
    `http://127.0.0.1:${port}`,
    '/-/ready',
  );
}

/** `tokenFile`: the pinwatch hosts' access token, sent as a bearer token (their network binds require it). */
export async function startPrometheus(dir: string, port: number, targets: string[], rulesFile: string, alertmanager: string, tokenFile?: string): Promise<Daemon> {
  const config = join(dir, 'prometheus.yml');
  writeFileSync(
    config,
    [
      'global:',
      '  scrape_interval: 1s',
      '  scrape_timeout: 1s',
      '  evaluation_interval: 1s',
      'rule_files:',
      `  - ${rulesFile}`,
      'alerting:',
      '  alertmanagers:',
      '    - static_configs:',
      `        - targets: ['${new URL(alertmanager).host}']`,
      'scrape_configs:',
      '  - job_name: pinwatch',
      ...(tokenFile ? ['    authorization:', `      credentials_file: ${tokenFile}`] : []),
      '    static_configs:',
      `      - targets: [${targets.map((t) => `'${t}'`).join(', ')}]`,
      '',
    ].join('\n'),
  );
  return startDaemon(
    'prometheus',
    [`--config.file=${config}`, `--storage.tsdb.path=${join(dir, 'prom-data')}`, `--web.listen-address=127.0.0.1:${port}`, '--log.level=warn'],
    `http://127.0.0.1:${port}`,
    '/-/ready',
  );
}

/** An instant query's samples. */
export async function promQuery(prometheus: string, q: string): Promise<{ metric: Record<string, string>; value: [number, string] }[]> {
  const res = await fetch(`${prometheus}/api/v1/query?query=${encodeURIComponent(q)}`);
  const body = (await res.json()) as { status: string; data: { result: { metric: Record<string, string>; value: [number, string] }[] } };
  if (body.status !== 'success') throw new Error(`query ${q} failed: ${JSON.stringify(body)}`);
  return body.data.result;
}
