// The pinwatch command line (commander): record, serve, export, doctor, scenario, rules. Exit codes: 0 ok, 1 the command
// failed (message + fix on stderr), 2 bad usage (one line naming the flag). Heavy modules (collector, web) are
// imported inside the commands, so `--help` and flag errors are fast and work without the web build.
import { readFileSync } from 'node:fs';
import { Command, CommanderError, Option } from 'commander';
import {
  DoctorArgs, ExportArgs, EXIT_FAILURE, EXIT_OK, EXIT_USAGE, LOG_LEVELS, LogLevel, RecordArgs, ServeArgs, UsageError, validate,
} from './args.ts';
import { describeFailure } from './errors.ts';
import { formatRules } from './format.ts';
import { processIo, type CliIo } from './io.ts';

const MODES = ['auto', 'tracepoint', 'kprobe'];
const VERIFY_CPU_SHARE_HELP = 'share of one core the background pagemap sweep of live pins may use (default 0.05)';

function version(): string {
  try {
    return (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

/** Run the CLI with `argv` (the words after `pinwatch`); resolves with the exit code. */
export async function main(argv: string[], ioOverride?: Partial<CliIo>): Promise<number> {
  // --log-level is read before commander so every command (and the web server) uses it.
  const levelIdx = argv.indexOf('--log-level');
  const rawLevel = levelIdx >= 0 ? argv[levelIdx + 1] : (process.env.PINWATCH_LOG_LEVEL ?? 'info');
  const level = LogLevel.safeParse(rawLevel);
  const io: CliIo = { ...processIo(level.success ? level.data : 'info'), ...ioOverride };
  if (!level.success) {
    io.err(`pinwatch: --log-level must be one of ${LOG_LEVELS.join(', ')} (got ${JSON.stringify(rawLevel)})`);
    return EXIT_USAGE;
  }
  process.env.PINWATCH_LOG_LEVEL = io.logLevel;

  let code = EXIT_OK;
  const program = new Command('pinwatch')
    .description('Live eBPF watch for pin/PTE divergence: a page a device DMAs into is no longer the page the process maps.')
    .version(version(), '-V, --version')
    .addOption(new Option('--log-level <level>', 'log level of the JSON logs on stderr').choices([...LOG_LEVELS]).default('info'))
    .showSuggestionAfterError(true)
    .exitOverride()
    .configureOutput({
      writeOut: (s) => io.out(s.replace(/\n$/, '')),
      writeErr: (s) => io.err(s.replace(/\n$/, '')),
      outputError: (s, write) => write(`pinwatch: ${s.replace(/^error: /, '').trim()}\n`),
    });

  program
    .command('record')
    .description('capture live into a SQLite file (headless); prints anomalies as they happen; SIGINT/SIGTERM stops and flushes')
    .requiredOption('--db <file>', 'SQLite file to record into (created when missing)')
    .option('--duration <seconds>', 'stop after this many seconds')
    .option('--mode <mode>', `trace mode: ${MODES.join(' | ')}`, 'auto')
    .option('--verify-cpu-share <ratio>', VERIFY_CPU_SHARE_HELP)
    .action(async (opts: Record<string, unknown>) => {
      const args = validate('record', RecordArgs, opts);
      const { record } = await import('./record.ts');
      code = await record(args, io);
    });

  program
    .command('serve')
    .description('start the dashboard (live capture, or --replay a recording)')
    .option('--port <n>', 'TCP port (0: any free port)', '3000')
    .option('--host <host>', 'address to listen on', '127.0.0.1')
    .option('--db <file>', 'SQLite file the live capture records into (default: a new file under ./recordings)')
    .option('--replay <file>', 'open this recording read-only instead of capturing')
    .option('--webhook <url>', 'POST critical and high incidents to this URL as JSON')
    .option('--prometheus <url>', "add a Fleet page: hosts, health, pins and incidents from this Prometheus server's HTTP API")
    .option('--host-label <name>', 'the host label of this instance in /metrics (default: the host name)')
    .option('--mode <mode>', `trace mode for live capture: ${MODES.join(' | ')}`)
    .option('--verify-cpu-share <ratio>', VERIFY_CPU_SHARE_HELP)
    .option('--dev', 'Next.js dev server (hot reload) instead of the production build', false)
    .option('--allow-scenarios', 'let the scenario page run the bundled reproducers (as root, loopback clients only)', false)
    .option('--allowed-host <name>', 'another name clients may use in the Host header (repeatable)', (v: string, prev: string[]) => [...prev, v], [] as string[])
    .option('--tls-cert <file>', 'serve https with this PEM certificate (with --tls-key)')
    .option('--tls-key <file>', 'the PEM private key of --tls-cert')
    .option('--insecure', 'allow plain HTTP on a non-loopback --host (the token crosses the network in clear)', false)
    .option('--token-file <file>', 'access token of a non-loopback bind (created 0600 when missing; default: the state directory)')
    .option('--user <name>', 'unprivileged user the web server runs as when started as root (default: pinwatch if it exists, else nobody)')
    .action(async (opts: Record<string, unknown>) => {
      const args = validate('serve', ServeArgs, opts);
      const { serveCommand } = await import('./serve.ts');
      code = await serveCommand(args, io);
    });

  program
    .command('export')
    .description('write a recording as JSON Lines (log pipelines) or a Perfetto trace (ui.perfetto.dev)')
    .requiredOption('--format <format>', 'jsonl | perfetto')
    .requiredOption('--db <file>', 'the recording (SQLite file of pinwatch record / serve)')
    .option('--out <file>', 'write here instead of stdout')
    .action(async (opts: Record<string, unknown>) => {
      const args = validate('export', ExportArgs, opts);
      const { exportCommand } = await import('./export.ts');
      code = await exportCommand(args, io);
    });

  program
    .command('doctor')
    .description('check this host: root, bpftrace, tracefs, BTF, kprobes, and which scripts can attach')
    .option('--mode <mode>', `trace mode: ${MODES.join(' | ')}`, 'auto')
    .option('--attach', 'also start the selected bpftrace program once and time the attach', false)
    .action(async (opts: Record<string, unknown>) => {
      const args = validate('doctor', DoctorArgs, opts);
      const { runDoctor, formatDoctor } = await import('../collector/doctor.ts');
      const report = await runDoctor({ mode: args.mode, attach: args.attach });
      io.out(formatDoctor(report));
      code = report.ok ? EXIT_OK : EXIT_FAILURE;
    });

  program
    .command('scenario')
    .description('run a reproducer (builds it with cc first); --list shows them')
    .argument('[name]', 'scenario to run')
    .option('--list', 'list the scenarios', false)
    .action(async (name: string | undefined, opts: { list: boolean }) => {
      const { scenarioCommand } = await import('./scenario.ts');
      code = await scenarioCommand(name, opts.list, io);
    });

  program
    .command('rules')
    .description('list the anomaly rules: id, severity, title')
    .option('--json', 'print the full rule descriptions as JSON', false)
    .action(async (opts: { json: boolean }) => {
      const { RULE_INFOS } = await import('../collector/rules/index.ts');
      io.out(opts.json ? JSON.stringify(RULE_INFOS, null, 2) : formatRules(RULE_INFOS));
      code = EXIT_OK;
    });

  if (argv.length === 0) {
    io.err(program.helpInformation().replace(/\n$/, ''));
    return EXIT_USAGE;
  }
  try {
    await program.parseAsync(argv, { from: 'user' });
    return code;
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help') return err.exitCode === 0 ? EXIT_OK : EXIT_USAGE;
      return EXIT_USAGE; // commander already printed the one-line error
    }
    if (err instanceof UsageError) {
      io.err(err.message);
      return EXIT_USAGE;
    }
    const command = program.args[0] ?? argv[0] ?? 'pinwatch';
    io.err(describeFailure(command, err, io.logLevel));
    return EXIT_FAILURE;
  }
}
