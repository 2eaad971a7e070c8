/**
 * Reads and validates the Action's inputs. Secret inputs are masked before anything else reads them; every
 * problem becomes an `ActionError` that names the input.
 */
import { decodeJwt } from 'jose';
import { MytokenError, checkServerUrl, readMytokenClaims } from '../client/index.ts';
import type { ActionCore, ActionEnv } from './core.ts';
import { ActionError, invalidInput } from './errors.ts';
import { secretNameProblem, type SecretTarget } from './secret-target.ts';

export interface ActionInputs {
  mytoken: string;
  /** Normalised server URL, no trailing slash. */
  server: string;
  allowInsecureHttp: boolean;
  oidcIssuer: string | undefined;
  scope: string | undefined;
  audience: string | undefined;
  comment: string;
  /** Undefined when `secret-name` is empty. */
  secret: SecretTarget | undefined;
  githubToken: string | undefined;
  jobToken: string | undefined;
  exportVariable: string | undefined;
  /** Seconds; undefined unless the long-job mode is on. */
  subTokenLifetime: number | undefined;
}

/** Inputs that hold credentials; masked first, before validation can mention anything. */
export const SECRET_INPUTS = ['mytoken', 'github-token', 'job-token'] as const;

/** The shortest value the mytoken server accepts as a token. */
const MIN_TOKEN_LENGTH = 32;
const MIN_LIFETIME_S = 60;
const MAX_LIFETIME_S = 31 * 24 * 3600;
const UNITS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86_400 };

export function maskSecretInputs(core: ActionCore): void {
  for (const name of SECRET_INPUTS) {
    const raw = core.getInput(name);
    if (raw.trim() === '') continue;
    core.setSecret(raw);
    if (raw.trim() !== raw) core.setSecret(raw.trim());
  }
}

export function readInputs(core: ActionCore, env: ActionEnv): ActionInputs {
  const input = (name: string) => core.getInput(name).trim();
  noticeTrimmedSecrets(core);
  const allowInsecureHttp = readBoolean('allow-insecure-http', input('allow-insecure-http'));
  return {
    mytoken: readMytoken(input('mytoken')),
    server: readServer(input('mytoken-server'), allowInsecureHttp),
    allowInsecureHttp,
    oidcIssuer: readUrl('oidc-issuer', input('oidc-issuer')),
    scope: spaceList(input('scope')),
    audience: spaceList(input('audience')),
    comment: input('comment') || defaultComment(env),
    secret: readSecretTarget(input, env),
    githubToken: input('github-token') || undefined,
    jobToken: input('job-token') || undefined,
    exportVariable: readVariableName(input('export-variable')),
    subTokenLifetime: readLifetime(input('sub-token-lifetime')),
  };
}

/**
 * Surrounding whitespace in a secret is almost always the newline that `echo … | gh secret set` adds. It is
 * removed (both forms are masked) rather than refused, with a notice so the secret can be cleaned up.
 */
function noticeTrimmedSecrets(core: ActionCore): void {
  for (const name of SECRET_INPUTS) {
    const raw = core.getInput(name);
    if (raw.trim() === '' || raw.trim() === raw) continue;
    core.notice(
      `input "${name}" had leading or trailing whitespace (such as the newline echo adds); it was removed`,
    );
  }
}

function readMytoken(value: string): string {
  if (value === '') {
    throw new ActionError('ERR_ACTION_MYTOKEN_EMPTY', 'input "mytoken" is empty', {
      input: 'mytoken',
    });
  }
  // Control characters or inner whitespace mean a pasting accident or the wrong secret; the server would only
  // say "invalid token", so name the input here.
  if (!/^[\x21-\x7e]+$/.test(value)) {
    throw invalidInput('mytoken', 'is not a mytoken: it contains spaces or control characters');
  }
  if (value.length < MIN_TOKEN_LENGTH) {
    throw invalidInput('mytoken', `is not a mytoken: shorter than ${MIN_TOKEN_LENGTH} characters`);
  }
  // A short mytoken has no dots; a JWT that is not a mytoken is usually an access or ID token stored by mistake,
  // which the server would only call "invalid".
  if (isJwt(value) && readMytokenClaims(value).kind === 'opaque') {
    throw invalidInput('mytoken', 'is a JWT but not a mytoken (an access token or ID token?)');
  }
  return value;
}

function isJwt(value: string): boolean {
  try {
    decodeJwt(value);
    return true;
  } catch {
    return false;
  }
}

function readServer(value: string, allowInsecureHttp: boolean): string {
  if (value === '') throw invalidInput('mytoken-server', 'is empty');
  try {
    return checkServerUrl(value, allowInsecureHttp);
  } catch (error) {
    if (!(error instanceof MytokenError)) throw error;
    const plainHttp = value.startsWith('http:') && URL.canParse(value);
    const problem = plainHttp
      ? 'uses plain http for a host other than loopback: use https, or set "allow-insecure-http: true"'
      : 'must be an https URL without credentials, query or fragment';
    throw invalidInput('mytoken-server', problem, error);
  }
}

function readSecretTarget(
  input: (name: string) => string,
  env: ActionEnv,
): SecretTarget | undefined {
  const name = input('secret-name');
  const environment = input('secret-environment');
  const org = input('secret-organization');
  if (name === '') {
    if (environment !== '') throw invalidInput('secret-environment', 'needs "secret-name"');
    if (org !== '') throw invalidInput('secret-organization', 'needs "secret-name"');
    return undefined;
  }
  const problem = secretNameProblem(name);
  if (problem !== undefined) throw invalidInput('secret-name', problem);
  const upper = name.toUpperCase();
  if (environment !== '' && org !== '') {
    throw invalidInput('secret-organization', 'cannot be combined with "secret-environment"');
  }
  if (org !== '') {
    if (!/^[A-Za-z0-9][A-Za-z0-9-]*$/.test(org)) {
      throw invalidInput('secret-organization', 'is not an organization name');
    }
    return { kind: 'organization', org, name: upper };
  }
  const [owner, repo] = repository(env);
  if (environment === '') return { kind: 'repository', owner, repo, name: upper };
  return { kind: 'environment', owner, repo, environment, name: upper };
}

function repository(env: ActionEnv): [string, string] {
  const match = /^([^/\s]+)\/([^/\s]+)$/.exec(env.GITHUB_REPOSITORY ?? '');
  if (match === null || match[1] === undefined || match[2] === undefined) {
    throw invalidInput(
      'secret-name',
      'needs GITHUB_REPOSITORY (owner/name), which the runner sets',
    );
  }
  return [match[1], match[2]];
}

function readBoolean(name: string, value: string): boolean {
  if (['true', 'True', 'TRUE'].includes(value)) return true;
  if (['false', 'False', 'FALSE', ''].includes(value)) return false;
  throw invalidInput(name, 'must be "true" or "false"');
}

function readUrl(name: string, value: string): string | undefined {
  if (value === '') return undefined;
  if (!URL.canParse(value)) throw invalidInput(name, 'is not a URL');
  return value;
}

function spaceList(value: string): string | undefined {
  const items = value.split(/\s+/).filter(Boolean);
  return items.length === 0 ? undefined : items.join(' ');
}

function readVariableName(value: string): string | undefined {
  if (value === '') return undefined;
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(value)) {
    throw invalidInput('export-variable', 'is not a valid environment variable name');
  }
  if (/^(GITHUB|RUNNER)_/i.test(value) || /^(PATH|NODE_OPTIONS)$/i.test(value)) {
    throw invalidInput('export-variable', 'names a variable the runner or Node reserve');
  }
  return value;
}

function readLifetime(value: string): number | undefined {
  if (value === '') return undefined;
  const match = /^(\d+)\s*([smhd]?)$/.exec(value);
  const seconds = match === null ? NaN : Number(match[1]) * (UNITS[match[2] || 's'] ?? NaN);
  if (!Number.isSafeInteger(seconds) || seconds < MIN_LIFETIME_S || seconds > MAX_LIFETIME_S) {
    throw invalidInput(
      'sub-token-lifetime',
      'must be a duration between 60s and 31d, e.g. "3600", "90m" or "6h"',
    );
  }
  return seconds;
}

function defaultComment(env: ActionEnv): string {
  const where = [env.GITHUB_REPOSITORY, env.GITHUB_WORKFLOW].filter(Boolean).join(' ');
  const run = env.GITHUB_RUN_ID === undefined ? '' : ` run ${env.GITHUB_RUN_ID}`;
  return `GitHub Actions${where === '' ? '' : `: ${where}`}${run}`.slice(0, 200);
}
