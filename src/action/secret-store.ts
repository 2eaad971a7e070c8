/**
 * The write-back target as a `TokenStore`: the mytoken client calls `save()` with every rotated mytoken before it
 * returns the access token, and `save()` resolves only once GitHub has stored the sealed value. Everything that can
 * be checked without writing (the public key, the secret's existence and age, a classic PAT's scopes) is checked by
 * `prepareWriteBack` before the mytoken is presented, so that most permission problems surface while the stored
 * mytoken is still valid.
 */
import type { TokenStore } from '../client/index.ts';
import { ActionError } from './errors.ts';
import type { GitHubApi, GitHubResponse } from './github.ts';
import { isPublicKey, sealSecret } from './sealed-box.ts';
import { describeTarget, publicKeyPath, secretPath, type SecretTarget } from './secret-target.ts';

export interface PreparedTarget {
  target: SecretTarget;
  keyId: string;
  key: string;
  /** When GitHub last wrote the secret (second precision). */
  updatedAt: Date;
  /** Organization secrets only: kept as they are when the value is replaced. */
  visibility: string | undefined;
  selectedRepositoryIds: number[] | undefined;
}

const MAX_REPOSITORY_PAGES = 10;

/** Reads the public key and the secret's metadata; fails when either is not readable. */
export async function prepareWriteBack(
  api: GitHubApi,
  target: SecretTarget,
): Promise<PreparedTarget> {
  const what = describeTarget(target);
  const keyRes = await api.get(publicKeyPath(target), `read the public key for ${what}`);
  checkClassicScopes(keyRes, target);
  const keyId = keyRes.body.key_id;
  const key = keyRes.body.key;
  if (typeof keyId !== 'string' || typeof key !== 'string' || !(await isPublicKey(key))) {
    throw new ActionError('ERR_ACTION_GITHUB', `GitHub sent no usable public key for ${what}`);
  }

  const secretRes = await api.get(secretPath(target), `read ${what}`);
  const updatedAt = new Date(String(secretRes.body.updated_at));
  if (Number.isNaN(updatedAt.getTime())) {
    throw new ActionError('ERR_ACTION_GITHUB', `GitHub sent no "updated_at" for ${what}`);
  }
  const visibility = target.kind === 'organization' ? orgVisibility(secretRes) : undefined;
  const selectedRepositoryIds =
    visibility === 'selected' ? await selectedRepositories(api, target) : undefined;
  return { target, keyId, key, updatedAt, visibility, selectedRepositoryIds };
}

export class GitHubSecretStore implements TokenStore {
  readonly description: string;
  readonly #api: GitHubApi;
  readonly #prepared: PreparedTarget;
  #current: string;
  #writes = 0;

  constructor(current: string, api: GitHubApi, prepared: PreparedTarget) {
    this.#current = current;
    this.#api = api;
    this.#prepared = prepared;
    this.description = describeTarget(prepared.target);
  }

  async load(): Promise<string> {
    return this.#current;
  }

  async save(token: string): Promise<void> {
    const p = this.#prepared;
    const body: Record<string, unknown> = {
      encrypted_value: await sealSecret(p.key, token),
      key_id: p.keyId,
    };
    if (p.visibility !== undefined) body.visibility = p.visibility;
    if (p.selectedRepositoryIds !== undefined) {
      body.selected_repository_ids = p.selectedRepositoryIds;
    }
    await this.#api.put(secretPath(p.target), body, `write ${this.description}`);
    this.#current = token;
    this.#writes++;
  }

  /** How many rotated tokens were written back. */
  get writes(): number {
    return this.#writes;
  }
}

/**
 * A classic PAT announces its scopes in `x-oauth-scopes`; when it lacks the one the write needs, fail now rather
 * than after the rotation. Fine-grained and App tokens send no such header and are only judged by the write.
 */
function checkClassicScopes(res: GitHubResponse, target: SecretTarget): void {
  const header = res.headers['x-oauth-scopes'];
  if (typeof header !== 'string') return;
  const scopes = header.split(',').map((s) => s.trim());
  const needed = target.kind === 'organization' ? ['admin:org'] : ['repo', 'public_repo'];
  if (needed.some((s) => scopes.includes(s))) return;
  throw new ActionError(
    'ERR_ACTION_GITHUB_PERMISSION',
    `"github-token" is a classic token without the "${needed[0]}" scope needed to write ${describeTarget(target)}`,
    { status: res.status },
  );
}

function orgVisibility(res: GitHubResponse): string {
  const visibility = res.body.visibility;
  return visibility === 'all' || visibility === 'selected' ? visibility : 'private';
}

/** The repositories a `selected` organization secret is shared with, so a write keeps the selection. */
async function selectedRepositories(api: GitHubApi, target: SecretTarget): Promise<number[]> {
  const ids: number[] = [];
  for (let page = 1; page <= MAX_REPOSITORY_PAGES; page++) {
    const path = `${secretPath(target)}/repositories?per_page=100&page=${page}`;
    const res = await api.get(path, `list the repositories of ${describeTarget(target)}`);
    const repos = Array.isArray(res.body.repositories) ? res.body.repositories : [];
    for (const repo of repos) {
      const id = (repo as { id?: unknown }).id;
      if (typeof id === 'number') ids.push(id);
    }
    if (repos.length < 100) return ids;
  }
  return ids;
}

/**
 * The store for a mytoken whose claims say it does not rotate: loads the input and refuses a save, so that a
 * rotation nobody expected fails loudly (the client then reports the lost token) instead of vanishing in memory.
 */
export class NoWriteBackStore implements TokenStore {
  readonly description: string;
  readonly #token: string;

  constructor(token: string, description: string) {
    this.#token = token;
    this.description = description;
  }

  async load(): Promise<string> {
    return this.#token;
  }

  async save(): Promise<void> {
    throw new ActionError(
      'ERR_ACTION_NO_WRITE_BACK',
      'the server rotated a mytoken whose claims say it does not rotate',
    );
  }
}
