/**
 * The Action's main step as a list of phases: read and validate inputs, inspect the mytoken, prepare the
 * write-back target (public key, stale-secret check), exchange, write back (inside the exchange, through the
 * token store), publish outputs and summary. Every phase before the exchange may fail without harm: the mytoken
 * is presented to the server only once everything that can be checked beforehand has been.
 */
import {
  MytokenClient,
  createTransport,
  hasCapability,
  readMytokenClaims,
  type AccessToken,
  type MytokenClaims,
  type OpaqueMytoken,
  type TokenStore,
  type Transport,
} from '../client/index.ts';
import type { ActionCore, ActionEnv } from './core.ts';
import { ActionError } from './errors.ts';
import { GitHubApi } from './github.ts';
import { maskSecretInputs, readInputs, type ActionInputs } from './inputs.ts';
import { findJobStart, isStale } from './job-start.ts';
import { startLongJobMode, type SubtokenResult } from './long-job.ts';
import { failureMessage, type FailureContext } from './messages.ts';
import { GitHubSecretStore, NoWriteBackStore, prepareWriteBack } from './secret-store.ts';
import { describeTarget, type SecretTarget } from './secret-target.ts';
import { renderSummary } from './summary.ts';

export interface RunOptions {
  core: ActionCore;
  env: ActionEnv;
  /**
   * First step of the retry backoffs in milliseconds, GitHub's and the mytoken server's (tests shorten it).
   * Default 300 for GitHub, 250 for the mytoken server; a server's `Retry-After` is honoured regardless.
   */
  retryBaseDelayMs?: number;
  /**
   * Per-attempt timeout in milliseconds for connecting and for the answer, mytoken server and GitHub alike (tests
   * shorten it). Default 10 000 to connect, 20 000 for the answer.
   */
  timeoutMs?: number;
  /** How later steps start this bundle for `mytoken-access-token`: the Node binary and `dist/index.js`. */
  entry: { node: string; script: string };
}

interface TokenPlan {
  claims: MytokenClaims | OpaqueMytoken;
  /** True when a use may rotate the mytoken, so it must be written back. */
  writeBack: boolean;
}

interface Exchange {
  at: AccessToken;
  subtoken: SubtokenResult | undefined;
  newMytoken: string;
}

const USER_AGENT = 'mytoken-action';
const DEFAULT_API_URL = 'https://api.github.com';

/** Runs the main step; never throws: failures end in `core.setFailed` with one line. */
export async function run(options: RunOptions): Promise<void> {
  const { core, env } = options;
  const context: FailureContext = { secretName: undefined, server: undefined, rotating: false };
  const transport = createTransport({
    userAgent: USER_AGENT,
    connectTimeoutMs: options.timeoutMs ?? 10_000,
    timeoutMs: options.timeoutMs ?? 20_000,
  });
  try {
    maskSecretInputs(core);
    const inputs = readInputs(core, env);
    context.secretName = inputs.secret?.name;
    context.server = inputs.server;
    const plan = inspectToken(inputs);
    context.rotating = plan.writeBack;
    const store = await prepareStore(options, inputs, plan, transport);
    const exchange = await exchangeToken(options, inputs, store, transport);
    publishOutputs(core, inputs, exchange);
    await publishSummary(core, inputs, plan, exchange, store).catch((error: unknown) => {
      core.warning(`could not write the job summary: ${(error as Error).message}`);
    });
  } catch (error) {
    reportFailure(core, error, context);
  } finally {
    await transport.close();
  }
}

/** Reads the mytoken's claims offline and refuses what the server would refuse anyway. */
function inspectToken(inputs: ActionInputs): TokenPlan {
  const claims = readMytokenClaims(inputs.mytoken);
  const longJob = inputs.subTokenLifetime !== undefined;
  if (claims.kind === 'opaque') return { claims, writeBack: true };

  if (claims.expiresAt !== undefined && claims.expiresAt.getTime() <= Date.now()) {
    throw new ActionError(
      'ERR_ACTION_MYTOKEN_EXPIRED',
      `the mytoken expired at ${claims.expiresAt.toISOString()}`,
    );
  }
  if (claims.issuer.replace(/\/+$/, '') !== inputs.server) {
    throw new ActionError(
      'ERR_ACTION_WRONG_SERVER',
      `the mytoken was issued by "${claims.issuer}", not by "mytoken-server" (${inputs.server})`,
    );
  }
  for (const capability of longJob ? ['AT', 'create_mytoken'] : ['AT']) {
    if (hasCapability(claims.capabilities, capability)) continue;
    throw new ActionError(
      'ERR_ACTION_MISSING_CAPABILITY',
      `the mytoken lacks the "${capability}" capability`,
    );
  }
  const rotation = claims.rotation;
  const writeBack = rotation?.onAT === true || (longJob && rotation?.onOther === true);
  return { claims, writeBack };
}

/** Chooses the token store; for a rotating token, checks the secret and its age before the token is used. */
async function prepareStore(
  options: RunOptions,
  inputs: ActionInputs,
  plan: TokenPlan,
  transport: Transport,
): Promise<TokenStore> {
  const { core } = options;
  if (!plan.writeBack) {
    core.debug('The mytoken does not rotate; nothing will be written back');
    return new NoWriteBackStore(inputs.mytoken, 'nowhere (the mytoken does not rotate)');
  }
  const { target, githubToken } = requireWriteBack(inputs, plan);
  const api = githubApi(options, inputs, githubToken, transport);
  const prepared = await prepareWriteBack(api, target);
  await checkNotSuperseded(options, inputs, prepared.updatedAt, target, transport);
  return new GitHubSecretStore(inputs.mytoken, api, prepared);
}

function requireWriteBack(
  inputs: ActionInputs,
  plan: TokenPlan,
): { target: SecretTarget; githubToken: string } {
  const why =
    plan.claims.kind === 'opaque'
      ? 'the mytoken may rotate on use (a short token does not say)'
      : 'the mytoken rotates on use';
  const missing = inputs.secret === undefined ? 'secret-name' : 'github-token';
  if (inputs.secret === undefined || inputs.githubToken === undefined) {
    throw new ActionError(
      'ERR_ACTION_NO_WRITE_BACK',
      `${why} but "${missing}" is not set, so the new mytoken would be lost`,
      { input: missing },
    );
  }
  return { target: inputs.secret, githubToken: inputs.githubToken };
}

/**
 * Stops when the secret changed after this job received it: another run has rotated the mytoken, and presenting
 * the superseded copy would fail (and, with `auto_revoke`, revoke the whole chain, the good copy included).
 */
async function checkNotSuperseded(
  options: RunOptions,
  inputs: ActionInputs,
  updatedAt: Date,
  target: SecretTarget,
  transport: Transport,
): Promise<void> {
  const { core, env } = options;
  const tokens: [string, string | undefined][] = [
    ['job-token', inputs.jobToken],
    ['github-token', inputs.jobToken === inputs.githubToken ? undefined : inputs.githubToken],
  ];
  const apis = tokens.flatMap(([tokenInput, token]) =>
    token === undefined
      ? []
      : [
          githubApi(options, inputs, token, transport, {
            tokenInput,
            attempts: 2,
            budgetMs: 5_000,
          }),
        ],
  );
  const start = await findJobStart(apis, env, (m) => core.debug(m));
  const what = describeTarget(target);
  if (start === undefined) {
    core.warning(
      `cannot tell when this job started; skipped the check for a concurrent update of ${what}`,
    );
    return;
  }
  core.debug(
    `Job started ${start.at.toISOString()} (${start.source}); ${what} updated ${updatedAt.toISOString()}`,
  );
  if (!isStale(updatedAt, start.at)) return;
  throw new ActionError(
    'ERR_ACTION_STALE_SECRET',
    `${what} was updated at ${updatedAt.toISOString()}, after this job started ` +
      `(${start.at.toISOString()}, from the ${start.source}), so the mytoken in hand is superseded and was not used`,
    { target: what },
  );
}

async function exchangeToken(
  options: RunOptions,
  inputs: ActionInputs,
  store: TokenStore,
  transport: Transport,
): Promise<Exchange> {
  const { core, env } = options;
  const client = new MytokenClient({
    server: inputs.server,
    store,
    transport,
    allowInsecureHttp: inputs.allowInsecureHttp,
    retryDelayMs: options.retryBaseDelayMs,
    onSecret: (secret) => core.setSecret(secret),
    logger: {
      debug: (message, fields) => core.debug(`${message} ${JSON.stringify(fields ?? {})}`),
    },
  });
  const at = await client.accessToken({
    scope: inputs.scope,
    audience: inputs.audience,
    oidcIssuer: inputs.oidcIssuer,
    comment: inputs.comment,
  });
  const subtoken =
    inputs.subTokenLifetime === undefined
      ? undefined
      : await startLongJobMode(client, inputs, core, env, options.entry);
  return { at, subtoken, newMytoken: await store.load() };
}

function publishOutputs(core: ActionCore, inputs: ActionInputs, exchange: Exchange): void {
  const { at } = exchange;
  core.setOutput('access-token', at.accessToken);
  core.setOutput('token-type', at.tokenType);
  core.setOutput('expires-in', at.expiresIn === undefined ? '' : String(at.expiresIn));
  core.setOutput('expires-at', at.expiresAt?.toISOString() ?? '');
  core.setOutput('scope', at.scope ?? '');
  core.setOutput('audience', at.audience?.join(' ') ?? '');
  core.setOutput('rotated', String(at.rotated));
  if (inputs.exportVariable !== undefined)
    core.exportVariable(inputs.exportVariable, at.accessToken);

  const expiry = at.expiresAt === undefined ? '' : ` (expires ${at.expiresAt.toISOString()})`;
  const rotated = at.rotated ? `; the rotated mytoken was written to ${inputs.secret?.name}` : '';
  core.info(`Access token issued${expiry}${rotated}`);
  if (exchange.subtoken !== undefined) {
    core.info(`Sub-token for this job valid until ${exchange.subtoken.expiresAt.toISOString()}`);
  }
}

async function publishSummary(
  core: ActionCore,
  inputs: ActionInputs,
  plan: TokenPlan,
  exchange: Exchange,
  store: TokenStore,
): Promise<void> {
  const claims = readMytokenClaims(exchange.newMytoken);
  const before = plan.claims.kind === 'jwt' ? plan.claims : undefined;
  const written = store instanceof GitHubSecretStore && store.writes > 0;
  await core.appendSummary(
    renderSummary({
      server: inputs.server,
      oidcIssuer: inputs.oidcIssuer ?? before?.oidcIssuer,
      scope: exchange.at.scope,
      audience: exchange.at.audience,
      accessTokenExpiresAt: exchange.at.expiresAt,
      mytokenExpiresAt: claims.kind === 'jwt' ? (claims.expiresAt ?? null) : undefined,
      rotated: exchange.at.rotated,
      writtenBackTo: written ? store.description : undefined,
      subTokenExpiresAt: exchange.subtoken?.expiresAt,
    }),
  );
}

function reportFailure(core: ActionCore, error: unknown, context: FailureContext): void {
  const code = (error as { code?: unknown }).code;
  const status = (error as { status?: unknown }).status;
  const cause = error instanceof Error && error.cause instanceof Error ? error.cause.message : '';
  core.debug(`Failure detail: code=${String(code)} status=${String(status)} cause=${cause}`);
  core.setFailed(failureMessage(error, context));
}

function githubApi(
  options: RunOptions,
  inputs: ActionInputs,
  token: string,
  transport: Transport,
  retry: { tokenInput?: string; attempts?: number; budgetMs?: number } = {},
): GitHubApi {
  return new GitHubApi({
    apiUrl: options.env.GITHUB_API_URL || DEFAULT_API_URL,
    token,
    transport,
    allowInsecureHttp: inputs.allowInsecureHttp,
    debug: (m) => options.core.debug(m),
    baseDelayMs: options.retryBaseDelayMs,
    ...retry,
  });
}
