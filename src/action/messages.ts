/**
 * Turns any failure into the one line the user sees: what failed, then the fix. The fixes are named constants so
 * tests and docs can refer to them; the detail (codes, statuses, causes) goes to the debug log instead.
 */
import { MytokenError } from '../client/index.ts';
import { ActionError } from './errors.ts';

export const FORKS_HINT =
  'Secrets are not passed to workflows triggered from forks or by Dependabot; check the secret name and the event that started the run.';

export const MINT_HINT = 'Mint a new mytoken and store it in the secret.';

/** The fix for a superseded token; `secret` is the secret name when configured. */
export function concurrencyHint(secret: string | undefined): string {
  return (
    `Two runs probably used the same rotating mytoken at once; ${serialise(secret)} ` +
    'and store a newly minted mytoken in the secret.'
  );
}

/** The fix for a server failure that a concurrent use of a rotating mytoken also causes. */
export function serverOrConcurrencyHint(secret: string | undefined): string {
  return (
    `${SERVER_HINT} The server also answers so when two runs use the same rotating mytoken at once: ` +
    `if runs may overlap, ${serialise(secret)}.`
  );
}

function serialise(secret: string | undefined): string {
  const group = `mytoken-${secret ?? 'MYTOKEN'}`;
  return `serialise them with "concurrency: { group: ${group}, cancel-in-progress: false }"`;
}

export const RESTRICTED_HINT =
  'Check "scope" and "audience" against the token\'s restrictions (and its time window, hosts and usage limits), or mint a token whose restrictions fit.';

export const CAPABILITY_HINT =
  'Mint a mytoken with the "AT" capability (and "create_mytoken" when "sub-token-lifetime" is set).';

export const NETWORK_HINT =
  'Check "mytoken-server" and the runner\'s network and proxy settings (HTTPS_PROXY, NO_PROXY); the mytoken was not used, so a re-run is safe.';

export const SERVER_HINT = "Try again later; if it persists, ask the server's operator.";

export const WRITE_BACK_HINT =
  'Set "secret-name" to the secret that holds the mytoken and "github-token" to a token that may write it (a fine-grained PAT with "Secrets: read and write", or a GitHub App token); the job\'s GITHUB_TOKEN cannot write secrets.';

export const PERMISSION_HINT =
  'Give "github-token" "Secrets: read and write" on this repository ("Environments: read and write" for environment secrets, organization "Secrets" for organization secrets), e.g. a fine-grained PAT or a GitHub App token; the job\'s GITHUB_TOKEN cannot write secrets.';

export const NOT_FOUND_HINT =
  'Check "secret-name" (it must name the secret that holds the mytoken), "secret-environment" or "secret-organization", and that "github-token" may see the repository.';

export const GITHUB_HINT =
  'GitHub may be unavailable; the mytoken was not used, so a re-run is safe.';

export const WRONG_SERVER_HINT =
  'Set "mytoken-server" to the server that issued the token; the token is never sent to another server.';

/** The fix after a rotation whose new token could not be stored: the secret now holds a dead token. */
export function staleAfterRotationHint(secret: string | undefined): string {
  const name = secret ?? 'MYTOKEN';
  return (
    `The secret now holds a superseded token: mint a new mytoken and store it with "gh secret set ${name}", ` +
    'then fix the cause above before the next run.'
  );
}

/**
 * The fix when the exchange of a rotating mytoken failed in a way that may have spent it: the server may have
 * rotated the token and its answer was lost, or not. Only the next run can tell.
 */
export function unknownOutcomeHint(secret: string | undefined): string {
  return (
    'The server may have rotated the mytoken before the answer was lost: re-run once, and if that run reports ' +
    `the mytoken as superseded, mint a new one and store it with "gh secret set ${secret ?? 'MYTOKEN'}".`
  );
}

/** The fix when the write-back timed out or lost its connection: GitHub may have stored the value after all. */
export function writeMayHaveLandedHint(secret: string | undefined): string {
  return (
    'GitHub may have stored the new mytoken after all: re-run once, and if that run reports the mytoken as ' +
    `superseded, mint a new one and store it with "gh secret set ${secret ?? 'MYTOKEN'}".`
  );
}

export interface FailureContext {
  /** The `secret-name`, when set. */
  secretName: string | undefined;
  /** The `mytoken-server`, once validated. */
  server: string | undefined;
  /** True once the mytoken is known to (possibly) rotate on this run's exchange. */
  rotating?: boolean;
}

/** One line, never containing a token: the failure, a period, the fix. */
export function failureMessage(error: unknown, context: FailureContext): string {
  const [what, fix] =
    error instanceof ActionError
      ? actionFailure(error, context)
      : error instanceof MytokenError
        ? mytokenFailure(error, context)
        : [`unexpected failure: ${error instanceof Error ? error.message : String(error)}`, ''];
  return oneLine(fix === '' ? what : `${what}. ${fix}`);
}

function actionFailure(error: ActionError, context: FailureContext): [string, string] {
  switch (error.code) {
    case 'ERR_ACTION_MYTOKEN_EMPTY':
      return [error.message, FORKS_HINT];
    case 'ERR_ACTION_MYTOKEN_EXPIRED':
      return [error.message, MINT_HINT];
    case 'ERR_ACTION_WRONG_SERVER':
      return [error.message, WRONG_SERVER_HINT];
    case 'ERR_ACTION_MISSING_CAPABILITY':
      return [error.message, CAPABILITY_HINT];
    case 'ERR_ACTION_NO_WRITE_BACK':
      return [error.message, WRITE_BACK_HINT];
    case 'ERR_ACTION_GITHUB_PERMISSION':
      return [error.message, PERMISSION_HINT];
    case 'ERR_ACTION_GITHUB_NOT_FOUND':
      return [error.message, NOT_FOUND_HINT];
    case 'ERR_ACTION_GITHUB':
      return [error.message, GITHUB_HINT];
    case 'ERR_ACTION_STALE_SECRET':
      return [error.message, concurrencyHint(context.secretName)];
    case 'ERR_ACTION_INVALID_INPUT':
    case 'ERR_ACTION_HELPER':
      return [error.message, ''];
  }
}

function mytokenFailure(error: MytokenError, context: FailureContext): [string, string] {
  const server = context.server ?? '';
  const said = error.serverDescription === undefined ? '' : `: ${error.serverDescription}`;
  const secret = context.secretName;
  // A failure of the exchange itself, after which a rotating token may be spent without this run knowing.
  const spent = mayHaveSpent(error, context);
  switch (error.code) {
    case 'ERR_MYTOKEN_INVALID_TOKEN':
      return [
        `the mytoken server refused the mytoken as expired, revoked or superseded${said}`,
        concurrencyHint(context.secretName),
      ];
    case 'ERR_MYTOKEN_USAGE_RESTRICTED':
      return ["the mytoken's restrictions do not allow this request", RESTRICTED_HINT];
    case 'ERR_MYTOKEN_INSUFFICIENT_CAPABILITIES':
      return [`the mytoken lacks the capability for ${operationName(error)}`, CAPABILITY_HINT];
    case 'ERR_MYTOKEN_NETWORK':
      return spent
        ? [
            `the connection to the mytoken server ${server} failed (${causeCode(error)})`,
            unknownOutcomeHint(secret),
          ]
        : [`cannot reach the mytoken server ${server} (${causeCode(error)})`, NETWORK_HINT];
    case 'ERR_MYTOKEN_TIMEOUT':
      return [
        `the mytoken server ${server} did not answer in time`,
        spent ? unknownOutcomeHint(secret) : NETWORK_HINT,
      ];
    case 'ERR_MYTOKEN_RATE_LIMITED':
      return ['the mytoken server rate-limited this runner', SERVER_HINT];
    case 'ERR_MYTOKEN_SERVER_ERROR':
      return [
        `the mytoken server ${server} failed (${statusLabel(error)})`,
        serverFix(error, context),
      ];
    case 'ERR_MYTOKEN_MALFORMED_RESPONSE':
      return [
        `the mytoken server ${server} sent an unusable answer (${stripOperation(error)})`,
        spent ? unknownOutcomeHint(secret) : SERVER_HINT,
      ];
    case 'ERR_MYTOKEN_CHAIN_BROKEN':
      return [
        'the mytoken server rotated the mytoken but the new token never arrived, so the token chain is broken',
        staleAfterRotationHint(secret),
      ];
    case 'ERR_MYTOKEN_TOKEN_STORE':
      return [
        writeBackFailure(error),
        writeMayHaveLanded(error) ? writeMayHaveLandedHint(secret) : staleAfterRotationHint(secret),
      ];
    case 'ERR_MYTOKEN_OIDC_ERROR':
      return [
        `the OpenID provider refused to issue an access token${said}`,
        'Check "scope", "audience" and "oidc-issuer"; the grant behind the mytoken may have been revoked at the provider.',
      ];
    default:
      return [`mytoken server: ${stripOperation(error)}`, SERVER_HINT];
  }
}

/** Token uses that rotate a rotating mytoken; discovery and the like never present it. */
const TOKEN_USES = new Set(['access_token', 'create_subtoken']);

function mayHaveSpent(error: MytokenError, context: FailureContext): boolean {
  return (
    context.rotating === true && error.mayHaveReachedServer && TOKEN_USES.has(error.operation ?? '')
  );
}

/** `500 internal_server_error: could not decrypt refresh token`, or `502` for a proxy's page. */
function statusLabel(error: MytokenError): string {
  const said = error.serverDescription === undefined ? '' : `: ${error.serverDescription}`;
  return `${error.status ?? 'no status'}${error.serverError === undefined ? '' : ` ${error.serverError}`}${said}`;
}

function serverFix(error: MytokenError, context: FailureContext): string {
  const exchange = context.rotating === true && TOKEN_USES.has(error.operation ?? '');
  if (exchange && error.mayHaveReachedServer) return unknownOutcomeHint(context.secretName);
  // The server's own 5xx for a rotating token: it rolled back, or this run lost a race for the token.
  if (exchange) return serverOrConcurrencyHint(context.secretName);
  return SERVER_HINT;
}

/** True when the last write-back attempt timed out or lost its connection after sending. */
function writeMayHaveLanded(error: MytokenError): boolean {
  let current: unknown = error.cause;
  for (let depth = 0; depth < 4 && current instanceof Error; depth++) {
    if (current instanceof MytokenError) {
      const lost = current.code === 'ERR_MYTOKEN_TIMEOUT' || current.code === 'ERR_MYTOKEN_NETWORK';
      return lost && current.mayHaveReachedServer;
    }
    current = current.cause;
  }
  return false;
}

function writeBackFailure(error: MytokenError): string {
  const cause = error.cause instanceof Error ? `: ${error.cause.message}` : '';
  const where = error.message.replace(/^.*saving it to (.*) failed$/, '$1');
  return `the mytoken was rotated but writing it back to ${where} failed${cause}`;
}

/** The system or undici error code behind a network failure, e.g. `ECONNREFUSED`. */
function causeCode(error: Error): string {
  let current: unknown = error.cause;
  for (let depth = 0; depth < 4 && current instanceof Error; depth++) {
    const code = (current as { code?: unknown }).code;
    if (typeof code === 'string' && code !== 'UND_ERR') return code;
    current = current.cause;
  }
  return 'network error';
}

function operationName(error: MytokenError): string {
  return error.operation === 'create_subtoken' ? 'creating a sub-token' : 'access tokens';
}

function stripOperation(error: MytokenError): string {
  return error.operation === undefined
    ? error.message
    : error.message.replace(`${error.operation}: `, '');
}

function oneLine(text: string): string {
  return text.replace(/[\r\n]+/g, ' ');
}
