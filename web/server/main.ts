// Entry of the web process (spawned by cli/compose/web-process.ts with an IPC channel): waits for its
// WebConfig on the channel, starts the dashboard (web/server/serve.ts), answers `listening` or `failed`, and
// closes on `shutdown` or when the collector process goes away (the channel closes). ^C in a terminal reaches
// the whole process group: the collector decides when this process stops, so SIGINT is ignored here.
import { createLogger } from '../../collector/service/log.ts';
import { startWeb, type WebConfig, type WebHandle } from './serve.ts';

type FromCollector = { t: 'config'; cfg: WebConfig } | { t: 'db-ready' } | { t: 'shutdown' };

const log = createLogger('pinwatch-web');
let handle: WebHandle | null = null;
let stopping = false;
let dbIsReady: () => void = () => undefined;
const dbReady = new Promise<void>((r) => (dbIsReady = r));

function reply(m: unknown): void {
  if (process.connected) process.send!(m);
}

async function stop(code: number): Promise<never> {
  if (!stopping) {
    stopping = true;
    await handle?.close().catch((err: Error) => log.error({ err: err.message }, 'closing the web server failed'));
  }
  process.exit(code);
}

process.on('SIGINT', () => undefined);
process.on('SIGTERM', () => void stop(0));
process.on('disconnect', () => void stop(0));
process.on('message', (m: FromCollector) => {
  if (m?.t === 'shutdown') void stop(0);
  else if (m?.t === 'db-ready') dbIsReady();
  else if (m?.t === 'config' && !handle) {
    startWeb(m.cfg, log, dbReady).then(
      (h) => {
        handle = h;
        reply({ t: 'listening', url: h.url });
      },
      (err: Error & { code?: string }) => {
        reply({ t: 'failed', message: err.message, code: err.code ?? null });
        void stop(1);
      },
    );
  }
});
reply({ t: 'ready' });
