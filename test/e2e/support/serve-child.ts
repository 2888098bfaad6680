// Runs cli/compose/serve.ts in a child process for the browser tests: options as JSON in argv[2]; prints one
// line `PINWATCH_SERVE {"url":…}` when listening, closes cleanly on SIGTERM/SIGINT.
import { serve, type ServeOptions } from '../../../cli/compose/serve.ts';

const opts = JSON.parse(process.argv[2] ?? '{}') as ServeOptions;
const handle = await serve(opts);
process.stdout.write(`PINWATCH_SERVE ${JSON.stringify({ url: handle.url, mode: handle.mode, db: handle.db, status: handle.status(), webPid: handle.webPid(), access: handle.access, notes: handle.notes })}\n`);
let closing = false;
const stop = () => {
  if (closing) return;
  closing = true;
  handle.close().then(
    () => process.exit(0),
    (err: Error) => {
      console.error(err);
      process.exit(1);
    },
  );
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
