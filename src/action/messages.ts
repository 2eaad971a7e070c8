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
  const group = `mytoken-${secret ?? 'MYTOKEN'}`;
  return (
    'Two runs probably used the same rotating mytoken at once; serialise them with ' +
    `"concurrency: { group: ${group}, cancel-in-progress: false }" and store a newly minted mytoken in the secret.`
  );
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

export interface FailureContext {
  /** The `secret-name`, when set. */
  secretName: string | undefined;
  /** The `mytoken-server`, once validated. */
  server: string | undefined;
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
      return [`cannot reach the mytoken server ${server} (${causeCode(error)})`, NETWORK_HINT];
    case 'ERR_MYTOKEN_TIMEOUT':
      return [`the mytoken server ${server} did not answer in time`, NETWORK_HINT];
    case 'ERR_MYTOKEN_RATE_LIMITED':
      return ['the mytoken server rate-limited this runner', SERVER_HINT];
    case 'ERR_MYTOKEN_CHAIN_BROKEN':
      return [
        'the mytoken server rotated the mytoken but its answer was lost, so the token chain is broken',
        staleAfterRotationHint(context.secretName),
      ];
    case 'ERR_MYTOKEN_TOKEN_STORE':
      return [writeBackFailure(error), staleAfterRotationHint(context.secretName)];
    case 'ERR_MYTOKEN_OIDC_ERROR':
      return [
        `the OpenID provider refused to issue an access token${said}`,
        'Check "scope", "audience" and "oidc-issuer"; the grant behind the mytoken may have been revoked at the provider.',
      ];
    default:
      return [`mytoken server: ${stripOperation(error)}`, SERVER_HINT];
  }
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
