/**
 * The `mytoken-probe` command: arguments, signals and exit codes.
 *
 * Exit codes: 0 success; 1 a check failed (`--once`) or the probe failed at run time; 2 a user
 * error (bad usage, an invalid config, an unusable token file), reported in one line, no stack.
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { loadConfig, type ProbeConfig } from './config.ts';
import { ProbeError } from './errors.ts';
import { createLogger, isLogLevel, SecretScrubber } from './log.ts';
import { formatAddress, ProbeService, runOnce } from './service.ts';
import { loadWebConfig } from './web-config.ts';
import type { RunRecord } from './runner.ts';

const USAGE = `Usage: mytoken-probe --config FILE [options]

Runs token-protected HTTP checks on a schedule and serves the results for Prometheus.

Options:
  -c, --config FILE     the probe's YAML config (required)
      --check-config    validate the config and exit
      --once            run every check once, print a table, exit 1 if any failed
      --listen ADDR     serve on ADDR (host:port) instead of the config's "listen"
      --web.config.file FILE
                        TLS and basic auth for /metrics and /status (exporter-toolkit
                        format), instead of the config's "web.config_file"
      --log-level LEVEL debug, info (default), warn or error
  -h, --help            show this help
  -v, --version         show the version

Signals: SIGHUP reloads the config (a bad one is rejected and the running one kept);
SIGTERM or SIGINT shuts down cleanly (a second one forces the exit).
Exit codes: 0 ok, 1 check failed (--once) or runtime error, 2 usage, config or token file error.
`;

export const EXIT_OK = 0;
export const EXIT_FAILED = 1;
export const EXIT_USAGE = 2;

interface Args {
  config: string;
  checkConfig: boolean;
  once: boolean;
  listen: { host: string; port: number } | undefined;
  webConfigFile: string | undefined;
  logLevel: 'debug' | 'info' | 'warn' | 'error';
}

/** Runs the command; resolves with the exit code once the probe has stopped. */
export async function main(argv: string[]): Promise<number> {
  let args: Args | 'help' | 'version';
  try {
    args = parse(argv);
  } catch (error) {
    return fail(error, EXIT_USAGE, `\n${USAGE}`);
  }
  if (args === 'help') return print(USAGE, EXIT_OK);
  if (args === 'version') return print(`${version()}\n`, EXIT_OK);
  if (args.checkConfig) return checkConfig(args.config);
  if (args.once) return once(args);
  return serve(args);
}

const OPTIONS = {
  config: { type: 'string', short: 'c' },
  'check-config': { type: 'boolean' },
  once: { type: 'boolean' },
  listen: { type: 'string' },
  'web.config.file': { type: 'string' },
  'log-level': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
  version: { type: 'boolean', short: 'v' },
} as const;

function parse(argv: string[]): Args | 'help' | 'version' {
  let parsed: ReturnType<typeof parseArgs<{ options: typeof OPTIONS; allowPositionals: true }>>;
  try {
    parsed = parseArgs({ args: argv, allowPositionals: true, options: OPTIONS });
  } catch (error) {
    // Node's text goes on with advice that does not apply here: keep its first sentence.
    const first = (error instanceof Error ? error.message : 'bad arguments').split('. ')[0] ?? '';
    throw usage(`${first.charAt(0).toLowerCase()}${first.slice(1)}`);
  }
  const { values, positionals } = parsed;
  if (values.help === true) return 'help';
  if (values.version === true) return 'version';
  if (positionals.length > 0) throw usage(`unexpected argument "${positionals[0]}"`);
  if (values.config === undefined) throw usage('--config FILE is required');
  const logLevel = values['log-level'] ?? 'info';
  if (!isLogLevel(logLevel))
    throw usage(`--log-level "${logLevel}" is not one of debug, info, warn, error`);
  if (values['check-config'] === true && values.once === true) {
    throw usage('--check-config and --once exclude each other');
  }
  return {
    config: values.config,
    checkConfig: values['check-config'] === true,
    once: values.once === true,
    listen: values.listen === undefined ? undefined : listenAddress(values.listen),
    webConfigFile: values['web.config.file'],
    logLevel,
  };
}

async function checkConfig(file: string): Promise<number> {
  try {
    const config = await loadConfig(file);
    if (config.web.configFile !== undefined) loadWebConfig(config.web.configFile);
    return print(`${file}: valid, ${plural(config.checks.length, 'check')}\n`, EXIT_OK);
  } catch (error) {
    return fail(error, EXIT_USAGE, '', file);
  }
}

async function once(args: Args): Promise<number> {
  const scrubber = new SecretScrubber();
  const logger = createLogger({ level: args.logLevel, scrubber });
  let config: ProbeConfig;
  let results: { check: { name: string }; record: RunRecord }[];
  try {
    config = await loadConfig(args.config);
    results = await runOnce(config, { logger, scrubber });
  } catch (error) {
    return fail(error, exitCodeFor(error), '', args.config);
  }
  process.stdout.write(table(results));
  const failed = results.filter((r) => !r.record.success).length;
  process.stdout.write(`${plural(results.length, 'check')}, ${failed} failed\n`);
  return failed === 0 ? EXIT_OK : EXIT_FAILED;
}

async function serve(args: Args): Promise<number> {
  const scrubber = new SecretScrubber();
  const logger = createLogger({ level: args.logLevel, scrubber });
  // SIGHUP would end the process by default: take it from the start, and reload once running.
  let service: ProbeService | undefined;
  let reloadWanted = false;
  const onHangup = () => {
    if (service === undefined) reloadWanted = true;
    else void service.reload();
  };
  process.on('SIGHUP', onHangup);
  try {
    service = await ProbeService.start({
      configFile: args.config,
      logger,
      scrubber,
      version: version(),
      listen: args.listen,
      webConfigFile: args.webConfigFile,
    });
  } catch (error) {
    process.off('SIGHUP', onHangup);
    logger.error('Probe did not start', {
      code: (error as { code?: string }).code,
      err: error instanceof Error ? error.message : 'error',
      config_file: args.config,
    });
    return exitCodeFor(error);
  }
  if (reloadWanted) void service.reload();
  const signal = await stopSignal();
  process.off('SIGHUP', onHangup);
  logger.info('Shutting down', { signal, address: formatAddress(service.address) });
  const force = () => {
    logger.warn('Forced exit; an exchange of the mytoken may have been cut off');
    process.exit(EXIT_FAILED);
  };
  process.once('SIGTERM', force);
  process.once('SIGINT', force);
  await service.close();
  return EXIT_OK;
}

function stopSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    process.once('SIGTERM', () => resolve('SIGTERM'));
    process.once('SIGINT', () => resolve('SIGINT'));
  });
}

function listenAddress(text: string): { host: string; port: number } {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]\s]*)):(\d{1,5})$/.exec(text);
  if (m === null || Number(m[3]) > 65535) throw usage(`--listen "${text}" is not host:port`);
  return { host: m[1] ?? m[2] ?? '', port: Number(m[3]) };
}

function table(results: { check: { name: string }; record: RunRecord }[]): string {
  const rows = [['CHECK', 'RESULT', 'REASON', 'STATUS', 'DURATION', 'DETAIL']];
  for (const { check, record } of results) {
    rows.push([
      check.name,
      record.success ? 'ok' : 'FAIL',
      record.reason ?? '-',
      record.statusCode === 0 ? '-' : String(record.statusCode),
      `${record.durationSeconds.toFixed(3)}s`,
      record.error ?? '',
    ]);
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows
    .map((r) =>
      r
        .map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i]!)))
        .join('  ')
        .trimEnd(),
    )
    .join('\n')
    .concat('\n');
}

function exitCodeFor(error: unknown): number {
  if (!(error instanceof ProbeError)) return EXIT_FAILED;
  return error.code === 'ERR_PROBE_LISTEN' ? EXIT_FAILED : EXIT_USAGE;
}

function fail(error: unknown, code: number, suffix = '', file?: string): number {
  const message = error instanceof Error ? error.message : String(error);
  const where =
    file !== undefined && error instanceof ProbeError && error.code === 'ERR_PROBE_CONFIG_INVALID'
      ? `${file}: `
      : '';
  process.stderr.write(`mytoken-probe: ${where}${message}\n${suffix}`);
  return code;
}

function print(text: string, code: number): number {
  process.stdout.write(text);
  return code;
}

function usage(message: string): ProbeError {
  return new ProbeError('ERR_PROBE_USAGE', message);
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

let cachedVersion: string | undefined;

export function version(): string {
  if (cachedVersion !== undefined) return cachedVersion;
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
    version?: string;
  };
  cachedVersion = pkg.version ?? '0.0.0';
  return cachedVersion;
}
