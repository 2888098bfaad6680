// `pinwatch serve`: hands the validated flags to the composition root (compose/serve.ts: capture in this
// process, the dashboard in its own unprivileged process), prints the banner and keeps both running until
// SIGINT/SIGTERM.
import { EXIT_FAILURE, EXIT_OK, type ServeArgs } from './args.ts';
import { describeFailure } from './errors.ts';
import type { CliIo } from './io.ts';

export async function serveCommand(args: ServeArgs, io: CliIo): Promise<number> {
  const { serve } = await import('./compose/serve.ts');
  let stop: ((sig: string) => void) | null = null;
  const stopped = new Promise<string>((r) => (stop = r));
  let signals = 0;
  const unsubscribe = io.onSignal((sig) => {
    if (++signals === 1) stop!(sig);
    else io.exit(130);
  });
  try {
    const opts: Record<string, unknown> = { host: args.host, port: args.port, dev: args.dev };
    if (args.db) opts.db = args.db;
    if (args.replay) opts.replay = args.replay;
    if (args.webhook) opts.webhook = args.webhook;
    if (args.mode) opts.mode = args.mode;
    if (args.verifyCpuShare !== undefined) opts.verifyCpuShare = args.verifyCpuShare;
    if (args.prometheus) opts.prometheus = args.prometheus;
    if (args.hostLabel) opts.hostLabel = args.hostLabel;
    opts.allowScenarios = args.allowScenarios;
    opts.allowedHosts = args.allowedHost;
    opts.insecure = args.insecure;
    if (args.tlsCert) opts.tlsCert = args.tlsCert;
    if (args.tlsKey) opts.tlsKey = args.tlsKey;
    if (args.tokenFile) opts.tokenFile = args.tokenFile;
    if (args.user) opts.user = args.user;
    const starting = serve(opts);
    const handle = await Promise.race([starting, stopped.then(() => null)]);
    if (handle === null) {
      // Interrupted while starting: close the server once it is up.
      await starting.then((h) => h.close()).catch(() => undefined);
      return EXIT_OK;
    }
    io.out(`pinwatch: dashboard at ${handle.url}`);
    for (const note of handle.notes) io.out(`pinwatch: ${note}`);
    const sig = await stopped;
    io.err(`pinwatch: ${sig}: shutting down`);
    await handle.close();
    return EXIT_OK;
  } catch (err) {
    io.err(describeFailure('serve', err, io.logLevel));
    return EXIT_FAILURE;
  } finally {
    unsubscribe();
  }
}
