/**
 * The probe service: loads the config, opens the token store, schedules the checks and serves the
 * HTTP endpoints; reloads on request (a bad config is rejected and the running one kept) and shuts
 * down without abandoning an exchange of the mytoken. `runOnce` runs every check a single time for
 * `--once`.
 */
import { Agent, EnvHttpProxyAgent, type Dispatcher } from 'undici';
import { FileTokenStore, MytokenClient, readMytokenClaims } from '../src/client/index.ts';
import { loadConfig, type CheckConfig, type ProbeConfig } from './config.ts';
import { ProbeError } from './errors.ts';
import { startHttpServer, type ProbeHttpServer, type WebOptions } from './http.ts';
import { clientLogger, type Logger, type SecretScrubber } from './log.ts';
import { ProbeMetrics } from './metrics.ts';
import { CheckRunner, type RunRecord } from './runner.ts';
import { scheduleCheck, type ScheduledCheck } from './scheduler.ts';
import { AccessTokens, ObservedStore, type TokenEvents } from './tokens.ts';
import { loadWebConfig } from './web-config.ts';

export interface ServiceOptions {
  configFile: string;
  logger: Logger;
  scrubber: SecretScrubber;
  version: string;
  /** Overrides the config's `listen` (tests use port 0). */
  listen?: { host: string; port: number };
  /** Endpoint protection; default: read from `webConfigFile` or the config's `web.config_file`. */
  web?: WebOptions;
  /** A web config file (`--web.config.file`), overriding the config's `web.config_file`. */
  webConfigFile?: string;
  /** Token-refresh backoff bounds, shortened by tests. */
  tokenBackoffMs?: { min: number; max: number };
}

interface TokenSetup {
  server: string;
  tokenFile: string;
  timeoutMs: number;
  tokens: AccessTokens;
}

interface ActiveCheck {
  runner: CheckRunner;
  schedule: ScheduledCheck;
}

export class ProbeService {
  readonly metrics: ProbeMetrics;
  readonly #options: ServiceOptions;
  readonly #dispatcher: Dispatcher;
  readonly #checks = new Map<string, ActiveCheck>();
  #config: ProbeConfig;
  #tokens: TokenSetup;
  #http: ProbeHttpServer | undefined;
  #closing: Promise<void> | undefined;
  #reloading: Promise<boolean> | undefined;

  private constructor(
    options: ServiceOptions,
    metrics: ProbeMetrics,
    config: ProbeConfig,
    tokens: TokenSetup,
  ) {
    this.#options = options;
    this.metrics = metrics;
    this.#config = config;
    this.#tokens = tokens;
    this.#dispatcher = createDispatcher();
  }

  /** Loads the config and token, starts the checks and the HTTP server. */
  static async start(options: ServiceOptions): Promise<ProbeService> {
    const metrics = new ProbeMetrics(options.version);
    const config = await loadConfig(options.configFile);
    const webFile = options.webConfigFile ?? config.web.configFile;
    const web = options.web ?? (webFile === undefined ? {} : loadWebConfig(webFile));
    const tokens = await openTokens(config, metrics, options);
    const service = new ProbeService(options, metrics, config, tokens);
    try {
      service.#http = await startHttpServer(
        options.listen ?? config.listen,
        {
          metrics: async () => ({ contentType: metrics.contentType, body: await metrics.render() }),
          status: () => service.status(),
          ready: () => service.#closing === undefined,
        },
        options.logger,
        web,
      );
    } catch (error) {
      await tokens.tokens.close();
      await service.#dispatcher.close();
      throw error;
    }
    service.#apply(config, undefined);
    metrics.configLoaded(true);
    options.logger.info('Probe started', {
      address: formatAddress(service.address),
      checks: config.checks.length,
      config_file: config.file,
      token_store: config.mytoken.tokenFile,
      version: options.version,
    });
    return service;
  }

  get address(): { host: string; port: number } {
    if (this.#http === undefined) throw new Error('not started');
    return this.#http.address;
  }

  get config(): ProbeConfig {
    return this.#config;
  }

  /**
   * Re-reads the config file. Returns false (and keeps the running config) when the new one is
   * rejected.
   */
  reload(): Promise<boolean> {
    // Reloads run one at a time; a reload asked for during another follows it.
    const next = (this.#reloading ?? Promise.resolve(true)).then(() => this.#reload());
    this.#reloading = next;
    return next;
  }

  async #reload(): Promise<boolean> {
    if (this.#closing !== undefined) return false;
    const next = await this.#loadReplacement();
    if (next === undefined) return false;
    const { config, tokens } = next;
    const { host, port } = config.listen;
    if (host !== this.#config.listen.host || port !== this.#config.listen.port) {
      this.#options.logger.warn('A new listen address takes effect after a restart', {
        address: formatAddress(config.listen),
      });
    }
    const previous = tokens === undefined ? undefined : this.#tokens;
    if (tokens !== undefined) this.#tokens = tokens;
    this.#apply(config, this.#config);
    this.#config = config;
    if (previous !== undefined) void previous.tokens.close();
    this.metrics.configLoaded(true);
    this.#options.logger.info('Configuration reloaded', {
      checks: config.checks.length,
      config_file: this.#options.configFile,
    });
    return true;
  }

  /**
   * The new config, and a new token source if it names another one; undefined (logged) when
   * rejected.
   */
  async #loadReplacement(): Promise<{ config: ProbeConfig; tokens?: TokenSetup } | undefined> {
    const { logger, configFile } = this.#options;
    try {
      const config = await loadConfig(configFile);
      if (sameTokenSource(config, this.#tokens)) return { config };
      return { config, tokens: await openTokens(config, this.metrics, this.#options) };
    } catch (error) {
      this.metrics.configLoaded(false);
      logger.error('Configuration rejected; keeping the running one', {
        config_file: configFile,
        code: (error as { code?: string }).code,
        err: error instanceof Error ? error.message : 'error',
      });
      return undefined;
    }
  }

  /** Starts new and changed checks, stops removed ones; unchanged checks run on undisturbed. */
  #apply(config: ProbeConfig, old: ProbeConfig | undefined): void {
    const tokensChanged = old !== undefined && !sameTokenSource(old, this.#tokens);
    // (On reload `this.#tokens` is already the new config's token source.)
    const wanted = new Set(config.checks.map((c) => c.name));
    for (const [name, active] of this.#checks) {
      if (wanted.has(name)) continue;
      this.#stopCheck(active);
      this.#checks.delete(name);
    }
    for (const check of config.checks) {
      const active = this.#checks.get(check.name);
      if (
        active !== undefined &&
        active.runner.config.fingerprint === check.fingerprint &&
        !tokensChanged
      ) {
        continue;
      }
      if (active !== undefined) {
        active.schedule.stop();
        active.runner.retire();
      }
      this.#startCheck(check, active?.runner);
    }
  }

  #startCheck(check: CheckConfig, previous: CheckRunner | undefined): void {
    const { logger, scrubber } = this.#options;
    const period =
      check.schedule.kind === 'interval' ? check.schedule.intervalMs : check.schedule.periodMs;
    const series = this.metrics.check(check.name, period / 1000);
    const runner = new CheckRunner({
      config: check,
      slot: this.#tokens.tokens.slot(check.scope, check.audience),
      dispatcher: this.#dispatcher,
      series,
      logger,
      scrubber,
    });
    if (previous !== undefined) runner.adopt(previous);
    const schedule = scheduleCheck(check.schedule, {
      job: async (lagMs) => {
        this.metrics.scheduleLag(lagMs / 1000);
        await runner.run();
      },
      skipped: () => series.recordSkip(),
      logger,
    });
    this.#checks.set(check.name, { runner, schedule });
    schedule.start();
  }

  #stopCheck(active: ActiveCheck): void {
    active.schedule.stop();
    active.runner.retire();
    this.metrics.removeCheck(active.runner.config.name);
  }

  /** The body of `/status`. */
  status(): Record<string, unknown> {
    return {
      version: this.#options.version,
      config_file: this.#config.file ?? null,
      checks: [...this.#checks.values()].map((c) => c.runner.status()),
    };
  }

  /**
   * Stops the checks, waits for any exchange of the mytoken in flight, closes the endpoints.
   * Idempotent.
   */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    for (const active of this.#checks.values()) {
      active.schedule.stop();
      active.runner.retire();
    }
    await this.#reloading?.catch(() => undefined);
    await this.#tokens.tokens.close();
    await this.#http?.close();
    await this.#dispatcher.destroy();
    this.#options.logger.info('Probe stopped');
  }
}

/** Runs every check of a config once, all at once, and returns the records in config order. */
export async function runOnce(
  config: ProbeConfig,
  options: Pick<ServiceOptions, 'logger' | 'scrubber' | 'tokenBackoffMs'>,
): Promise<{ check: CheckConfig; record: RunRecord }[]> {
  const tokens = await openTokens(config, silentEvents, options);
  const dispatcher = createDispatcher();
  try {
    const runs = config.checks.map(async (check) => {
      const runner = new CheckRunner({
        config: check,
        slot: tokens.tokens.slot(check.scope, check.audience),
        dispatcher,
        logger: options.logger,
        scrubber: options.scrubber,
        logFailures: false,
      });
      return { check, record: await runner.run() };
    });
    return await Promise.all(runs);
  } finally {
    await tokens.tokens.close();
    await dispatcher.destroy();
  }
}

/**
 * Opens the token file (refusing one that others can read) and builds the access-token cache on it.
 */
async function openTokens(
  config: ProbeConfig,
  events: TokenEvents,
  options: Pick<ServiceOptions, 'logger' | 'scrubber' | 'tokenBackoffMs'>,
): Promise<TokenSetup> {
  const { logger, scrubber } = options;
  // The store reports each token it sees; the cache that follows the mytoken comes later.
  const follower: { tokens?: AccessTokens } = {};
  const store = new ObservedStore(
    new FileTokenStore(config.mytoken.tokenFile),
    events,
    (token, claims) => {
      scrubber.add(token);
      follower.tokens?.observeMytoken(claims);
    },
  );
  let current: string;
  try {
    current = await store.load();
  } catch (cause) {
    const message = cause instanceof Error ? cause.message : 'cannot read the token file';
    throw new ProbeError('ERR_PROBE_TOKEN_STORE', message, { cause });
  }
  const client = new MytokenClient({
    server: config.mytoken.server,
    store,
    onSecret: (secret) => scrubber.add(secret),
    logger: clientLogger(logger),
    http: {
      timeoutMs: config.mytoken.timeoutMs,
      connectTimeoutMs: Math.min(10_000, config.mytoken.timeoutMs),
    },
  });
  const tokens = new AccessTokens({
    client,
    logger,
    events,
    minBackoffMs: options.tokenBackoffMs?.min,
    maxBackoffMs: options.tokenBackoffMs?.max,
  });
  follower.tokens = tokens;
  tokens.observeMytoken(readMytokenClaims(current));
  const { server, tokenFile, timeoutMs } = config.mytoken;
  return { server, tokenFile, timeoutMs, tokens };
}

function sameTokenSource(
  config: ProbeConfig,
  other: { server: string; tokenFile: string; timeoutMs: number },
): boolean {
  const { server, tokenFile, timeoutMs } = config.mytoken;
  return server === other.server && tokenFile === other.tokenFile && timeoutMs === other.timeoutMs;
}

/** Enough for thousands of checks a second on one host at loopback latency. */
const MAX_CONNECTIONS_PER_ORIGIN = 256;

function createDispatcher(): Dispatcher {
  // Keep-alive connections are reused across runs: a check measures the request, not a handshake.
  // Connections per origin are capped: without a cap, thousands of checks on one host opened a
  // socket each under load, filled the target's accept queue and starved the probe's event loop
  // (seen in the benchmark at 10,000 checks); with it, runs beyond the cap wait their turn within
  // their own timeout.
  const options = {
    keepAliveTimeout: 30_000,
    keepAliveMaxTimeout: 120_000,
    connections: MAX_CONNECTIONS_PER_ORIGIN,
  };
  // The proxy-aware agent consults the proxy settings on every request; a plain one skips that.
  const proxied = ['HTTP_PROXY', 'HTTPS_PROXY', 'http_proxy', 'https_proxy'].some(
    (v) => process.env[v],
  );
  return proxied ? new EnvHttpProxyAgent(options) : new Agent(options);
}

export function formatAddress(address: { host: string; port: number }): string {
  const host = address.host.includes(':') ? `[${address.host}]` : address.host;
  return `${host === '' ? '*' : host}:${address.port}`;
}

const silentEvents: TokenEvents = {
  tokenRequest: () => undefined,
  rotation: () => undefined,
  storeWrite: () => undefined,
  mytokenExpiry: () => undefined,
  chainBroken: () => undefined,
};
