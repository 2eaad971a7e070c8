// Hierarchical capability matching (§7.2 of the API reference).

/** Capabilities a token from an OIDC flow gets when the request names none. */
export const DEFAULT_CAPABILITIES = ['AT', 'tokeninfo'];

const READ_PREFIX = 'read@';

/**
 * Whether the held capability grants the required one: `a` grants `a` and `a:b…`; `read@a` grants
 * only `read@a…`; a full `a` also grants `read@a…`.
 */
export function grants(held: string, required: string): boolean {
  const heldRead = held.startsWith(READ_PREFIX);
  const requiredRead = required.startsWith(READ_PREFIX);
  if (heldRead && !requiredRead) return false;

  const heldPath = heldRead ? held.slice(READ_PREFIX.length) : held;
  const requiredPath = requiredRead ? required.slice(READ_PREFIX.length) : required;
  return requiredPath === heldPath || requiredPath.startsWith(`${heldPath}:`);
}

/** Whether any held capability grants the required one. */
export function hasCapability(held: readonly string[], required: string): boolean {
  return held.some((h) => grants(h, required));
}

/**
 * Capabilities of a sub-token: each requested capability the parent holds (or inherits through a
 * broader one) is kept as requested. A requested capability broader than the parent's is dropped,
 * not narrowed (oidc-mytoken/api capability.go, TightenCapabilities).
 */
export function intersect(requested: readonly string[], parent: readonly string[]): string[] {
  return [...new Set(requested.filter((r) => hasCapability(parent, r)))];
}
