// Restriction clauses (§7.3 of the API reference): input parsing, first-fit selection and
// sub-token tightening.
import { BlockList, isIP } from 'node:net';

import { badRequest } from './errors.ts';
import type { Clause, ClauseUsage, TokenRecord } from './model.ts';

const UNIT_SECONDS: Record<string, number> = {
  s: 1,
  m: 60,
  h: 3600,
  d: 86400,
  w: 7 * 86400,
  y: 365 * 86400,
};
const ARRAY_KEYS = ['audience', 'hosts', 'geoip_allow', 'geoip_disallow'] as const;
const COUNT_KEYS = ['usages_AT', 'usages_other'] as const;

/**
 * Parses the `restrictions` request field: an array of clauses or a single clause object. Time
 * fields may be Unix seconds, `"+<seconds>"`, `"+<n><s|m|h|d|w|y>…"` or `"YYYY-MM-DD HH:MM"` (local
 * time); `hosts` may contain `"this"` (the caller's IP). Returns undefined for "unrestricted".
 */
export function parseRestrictions(
  raw: unknown,
  now: number,
  clientIp: string,
): Clause[] | undefined {
  if (raw === undefined || raw === null) return undefined;
  if (typeof raw === 'string' || (Array.isArray(raw) && raw.some((c) => typeof c === 'string'))) {
    throw badRequest('restriction templates are not supported by the dev server');
  }
  const list = Array.isArray(raw) ? raw : [raw];
  // Clauses that restrict nothing are dropped on input (oidc-mytoken/utils profile/restrictions.go,
  // ParseRestrictionsTemplate): `[{}]` means "unrestricted", not one empty clause.
  const clauses = list
    .map((c) => parseClause(c, now, clientIp))
    .filter((c) => Object.keys(c).length > 0);
  return clauses.length > 0 ? clauses : undefined;
}

function parseClause(raw: unknown, now: number, clientIp: string): Clause {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw badRequest('restriction clause must be an object');
  }
  const input = raw as Record<string, unknown>;
  if (input.include !== undefined) {
    throw badRequest('restriction templates are not supported by the dev server');
  }

  const clause: Clause = {};
  if (input.nbf !== undefined) clause.nbf = parseTime(input.nbf, now, 'nbf');
  if (input.exp !== undefined) clause.exp = parseTime(input.exp, now, 'exp');
  if (input.scope !== undefined) {
    if (typeof input.scope !== 'string') throw badRequest("restriction 'scope' must be a string");
    if (input.scope !== '') clause.scope = input.scope;
  }
  for (const key of ARRAY_KEYS) {
    const value = parseStringArray(input[key], key);
    if (value?.length) clause[key] = value;
  }
  for (const key of COUNT_KEYS) {
    const value = input[key];
    if (value === undefined) continue;
    if (!Number.isSafeInteger(value) || (value as number) < 0) {
      throw badRequest(`restriction '${key}' must be a non-negative integer`);
    }
    clause[key] = value as number;
  }
  if (clause.hosts) clause.hosts = clause.hosts.map((h) => (h === 'this' ? clientIp : h));
  return clause;
}

function parseStringArray(value: unknown, key: string): string[] | undefined {
  if (value === undefined || value === null) return undefined;
  if (!Array.isArray(value) || value.some((v) => typeof v !== 'string')) {
    throw badRequest(`restriction '${key}' must be an array of strings`);
  }
  return value as string[];
}

/** Resolves a time field to Unix seconds. */
export function parseTime(value: unknown, now: number, key: string): number {
  if (typeof value === 'number') {
    if (!Number.isSafeInteger(value)) throw badRequest(`restriction '${key}' must be an integer`);
    return value;
  }
  if (typeof value !== 'string') throw badRequest(`restriction '${key}' has an invalid type`);

  const relative = /^\+(\d+)$/.exec(value);
  if (relative) return now + Number(relative[1]);
  // A string of digits is absolute Unix seconds (utils timerestriction.go, ParseTime).
  if (/^\d+$/.test(value)) return Number(value);
  if (/^\+(\d+[smhdwy])+$/.test(value)) {
    let total = 0;
    for (const [, n, unit] of value.matchAll(/(\d+)([smhdwy])/g)) {
      total += Number(n) * (UNIT_SECONDS[unit as string] ?? 0);
    }
    return now + total;
  }
  const absolute = /^(\d{4})-(\d{2})-(\d{2}) (\d{2}):(\d{2})$/.exec(value);
  if (absolute) {
    const [, y, mo, d, h, mi] = absolute.map(Number) as number[];
    return Math.floor(new Date(y!, mo! - 1, d, h, mi).getTime() / 1000);
  }
  throw badRequest(`restriction '${key}' has an invalid time format`);
}

/** Stable key of a clause for its usage counters (counters are per token and clause content). */
export function clauseKey(clause: Clause): string {
  const sorted = Object.keys(clause)
    .sort()
    .map((k) => [k, clause[k as keyof Clause]]);
  return JSON.stringify(sorted);
}

/** Counters of a clause of a token (zero when unused). */
export function usageOf(rec: TokenRecord, clause: Clause): ClauseUsage {
  return rec.usage[clauseKey(clause)] ?? { at: 0, other: 0 };
}

/** Adds one use of the given kind to a clause's counters. */
export function countUse(rec: TokenRecord, clause: Clause, kind: 'at' | 'other'): void {
  const key = clauseKey(clause);
  const usage = rec.usage[key] ?? { at: 0, other: 0 };
  usage[kind] += 1;
  rec.usage[key] = usage;
}

/**
 * First clause fitting an access-token request: time, host, geo and `usages_AT`, then the
 * requested scope and audience (subsets when both sides are non-empty).
 */
export function selectForAT(
  rec: TokenRecord,
  now: number,
  ip: string,
  scope: string[],
  audience: string[],
): Clause | undefined {
  return rec.restrictions?.find(
    (c) =>
      baseFits(c, now, ip) &&
      (c.usages_AT === undefined || usageOf(rec, c).at < c.usages_AT) &&
      (scope.length === 0 || !c.scope || isSubset(scope, splitScope(c.scope))) &&
      (audience.length === 0 || !c.audience?.length || isSubset(audience, c.audience)),
  );
}

/** First clause fitting an "other" request (sub-token creation, tokeninfo history/trees, …). */
export function selectForOther(rec: TokenRecord, now: number, ip: string): Clause | undefined {
  return rec.restrictions?.find(
    (c) =>
      baseFits(c, now, ip) &&
      (c.usages_other === undefined || usageOf(rec, c).other < c.usages_other),
  );
}

function baseFits(c: Clause, now: number, ip: string): boolean {
  if (c.nbf && now < c.nbf) return false;
  if (c.exp && now > c.exp) return false;
  if (c.hosts?.length && !c.hosts.some((h) => hostMatches(h, ip))) return false;
  return geoFits(c, ip);
}

// Without a geo-IP database the country of a public address is unknown: it fails an allow list
// and passes a deny list. Private and loopback addresses pass both, so clauses with geo keys stay
// usable in local tests.
function geoFits(c: Clause, ip: string): boolean {
  if (!c.geoip_allow?.length || isPrivate(ip)) return true;
  return false;
}

const PRIVATE = new BlockList();
PRIVATE.addSubnet('10.0.0.0', 8, 'ipv4');
PRIVATE.addSubnet('172.16.0.0', 12, 'ipv4');
PRIVATE.addSubnet('192.168.0.0', 16, 'ipv4');
PRIVATE.addSubnet('127.0.0.0', 8, 'ipv4');
PRIVATE.addAddress('::1', 'ipv6');
PRIVATE.addSubnet('fc00::', 7, 'ipv6');
PRIVATE.addSubnet('fe80::', 10, 'ipv6');

function isPrivate(ip: string): boolean {
  const family = isIP(ip);
  return family !== 0 && PRIVATE.check(ip, family === 4 ? 'ipv4' : 'ipv6');
}

function isLoopback(ip: string): boolean {
  return ip === '::1' || (isIP(ip) === 4 && ip.startsWith('127.'));
}

const subnetCache = new Map<string, BlockList | null>();

// Hosts entries: an IP, a CIDR, or a host name. Host names would need reverse DNS; the dev server
// only knows that loopback addresses are called "localhost".
function hostMatches(entry: string, ip: string): boolean {
  if (entry.includes('/'))
    return subnetFor(entry)?.check(ip, isIP(ip) === 6 ? 'ipv6' : 'ipv4') ?? false;
  if (isIP(entry) !== 0) return entry.toLowerCase() === ip.toLowerCase();
  return entry.toLowerCase() === 'localhost' && isLoopback(ip);
}

function subnetFor(cidr: string): BlockList | null {
  let list = subnetCache.get(cidr);
  if (list !== undefined) return list;
  const [addr = '', bits = ''] = cidr.split('/');
  const family = isIP(addr);
  list = null;
  if (family !== 0 && /^\d+$/.test(bits)) {
    list = new BlockList();
    try {
      list.addSubnet(addr, Number(bits), family === 4 ? 'ipv4' : 'ipv6');
    } catch {
      list = null;
    }
  }
  subnetCache.set(cidr, list);
  return list;
}

/** Splits a space-separated scope string. */
export function splitScope(scope: string | undefined): string[] {
  return scope ? scope.split(' ').filter(Boolean) : [];
}

function isSubset(items: readonly string[], of: readonly string[]): boolean {
  return items.every((i) => of.includes(i));
}

/** JWT `exp` for a clause list: the latest clause exp, none if any clause has no exp. */
export function maxExp(clauses: Clause[] | undefined): number | undefined {
  if (!clauses?.length || clauses.some((c) => !c.exp)) return undefined;
  return Math.max(...clauses.map((c) => c.exp as number));
}

/** JWT `nbf`: now, or the earliest clause nbf when every clause starts in the future. */
export function firstNbf(clauses: Clause[] | undefined, now: number): number {
  if (!clauses?.length) return now;
  return Math.max(now, Math.min(...clauses.map((c) => c.nbf ?? now)));
}

/**
 * Sub-token tightening (server restriction.go, Tighten): each requested clause is kept when it is
 * at least as strict as some parent clause on every key; the first such parent clause lends it
 * usage budget, so later requested clauses compare against what is left. Limits are compared with
 * the parent clause's configured limit, not with what the parent has used. Nothing requested or
 * nothing kept: the child gets the parent's clauses unchanged (it starts with fresh counters).
 * With `strict`, dropping any requested clause is an error.
 */
export function tighten(
  requested: Clause[] | undefined,
  parent: TokenRecord,
  strict: boolean,
): Clause[] | undefined {
  if (!parent.restrictions?.length) return requested;
  if (!requested?.length) return structuredClone(parent.restrictions);

  const budgets = parent.restrictions.map((p) => structuredClone(p));
  const kept = requested.filter((c) => lendBudget(c, budgets));
  if (strict && kept.length !== requested.length) {
    throw badRequest('requested restrictions are not subset of original restrictions');
  }
  return kept.length > 0 ? kept : structuredClone(parent.restrictions);
}

function lendBudget(c: Clause, budgets: Clause[]): boolean {
  const p = budgets.find((b) => atLeastAsStrict(c, b));
  if (!p) return false;
  if (p.usages_AT !== undefined && c.usages_AT !== undefined) p.usages_AT -= c.usages_AT;
  if (p.usages_other !== undefined && c.usages_other !== undefined) {
    p.usages_other -= c.usages_other;
  }
  return true;
}

function atLeastAsStrict(c: Clause, p: Clause): boolean {
  return (
    (p.nbf === undefined || (c.nbf !== undefined && c.nbf >= p.nbf)) &&
    (!p.exp || (!!c.exp && c.exp <= p.exp)) &&
    narrower(splitScope(c.scope), splitScope(p.scope)) &&
    narrower(c.audience, p.audience) &&
    narrower(c.hosts, p.hosts) &&
    narrower(c.geoip_allow, p.geoip_allow) &&
    isSubset(p.geoip_disallow ?? [], c.geoip_disallow ?? []) &&
    withinLimit(c.usages_AT, p.usages_AT) &&
    withinLimit(c.usages_other, p.usages_other)
  );
}

function narrower(child: string[] | undefined, parent: string[] | undefined): boolean {
  if (!parent?.length) return true;
  return !!child?.length && isSubset(child, parent);
}

// An absent limit is infinite (server utils, CompareNullableIntsWithNilAsInfinity).
function withinLimit(child: number | undefined, limit: number | undefined): boolean {
  return limit === undefined || (child !== undefined && child <= limit);
}

/**
 * Clauses as introspection shows them. A clause used at least once (for either kind) carries both
 * `usages_AT_done` and `usages_other_done`, one of them possibly 0: the server keeps one counter
 * row per clause (server usedRestriction.go, ToUsedRestriction).
 */
export function withUsage(rec: TokenRecord, clauses: Clause[]): Record<string, unknown>[] {
  return clauses.map((c) => {
    const used = rec.usage[clauseKey(c)];
    const out: Record<string, unknown> = { ...c };
    if (used) {
      out.usages_AT_done = used.at;
      out.usages_other_done = used.other;
    }
    return out;
  });
}
