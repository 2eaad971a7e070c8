/**
 * Where the rotated mytoken is written back: a repository, environment or organization secret, and the REST paths
 * for each (GitHub's current owner/repo routes; see docs/action.md for the permissions each needs).
 */

export type SecretTarget =
  | { kind: 'repository'; owner: string; repo: string; name: string }
  | { kind: 'environment'; owner: string; repo: string; environment: string; name: string }
  | { kind: 'organization'; org: string; name: string };

/** For messages, e.g. `repository secret MYTOKEN`. Never contains a value. */
export function describeTarget(target: SecretTarget): string {
  switch (target.kind) {
    case 'repository':
      return `repository secret ${target.name}`;
    case 'environment':
      return `environment secret ${target.name} (environment "${target.environment}")`;
    case 'organization':
      return `organization secret ${target.name} (organization "${target.org}")`;
  }
}

/** The scope's base path, without the API URL: `/repos/o/r/actions/secrets`, and so on. */
function scopePath(target: SecretTarget): string {
  const e = encodeURIComponent;
  switch (target.kind) {
    case 'repository':
      return `/repos/${e(target.owner)}/${e(target.repo)}/actions/secrets`;
    case 'environment':
      return `/repos/${e(target.owner)}/${e(target.repo)}/environments/${e(target.environment)}/secrets`;
    case 'organization':
      return `/orgs/${e(target.org)}/actions/secrets`;
  }
}

export function publicKeyPath(target: SecretTarget): string {
  return `${scopePath(target)}/public-key`;
}

export function secretPath(target: SecretTarget): string {
  return `${scopePath(target)}/${encodeURIComponent(target.name)}`;
}

/** GitHub's naming rule for secrets; returns the problem or undefined. */
export function secretNameProblem(name: string): string | undefined {
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) {
    return 'is not a valid secret name: use letters, digits and underscores, not starting with a digit';
  }
  if (/^GITHUB_/i.test(name)) return 'must not start with GITHUB_';
  return undefined;
}
