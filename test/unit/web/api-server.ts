// The dashboard's API handler (web/server/api.ts) on a loopback port, over one data source: for tests that ask
// /api/* of a real recording without the rest of the web server.
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createApi, type ApiContext } from '../../../web/server/api.ts';
import type { DataSource } from '../../../web/server/sources.ts';

export async function serveApi(source: DataSource): Promise<{ base: string; close(): Promise<void> }> {
  const ctx = { sources: { get: () => source }, log: { warn() {}, error() {} }, recordingDirs: [] } as unknown as ApiContext;
  const api = createApi(ctx);
  const server = createServer((req, res) => {
    void api.handle(req, res).then((done) => {
      if (!done) (res.statusCode = 404), res.end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    base: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}
