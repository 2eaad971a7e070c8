/**
 * The probe's YAML configuration: parsed, checked and normalised into plain values the rest of the
 * probe can use without further checks. Every problem is reported as a `ConfigError` naming the key
 * path of the bad value, such as `checks[2].expect.status`; unknown keys are rejected so that a
 * typo never silently disables an assertion.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import cron from 'node-cron';
import { parseDocument } from 'yaml';
import { checkServerUrl, MytokenError } from '../src/client/index.ts';
import { ConfigError, ProbeError } from './errors.ts';

export const DEFAULT_LISTEN = '127.0.0.1:9464';
const DEFAULT_INTERVAL_MS = 60_000;
const DEFAULT_TIMEOUT_MS = 10_000;
const DEFAULT_MYTOKEN_TIMEOUT_MS = 30_000;
const MIN_INTERVAL_MS = 100;
const MIN_TIMEOUT_MS = 10;
const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}$/;
const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'] as const;

export type HttpMethod = (typeof METHODS)[number];

export interface ProbeConfig {
  /** Absolute path of the file this came from, if any. */
  file: string | undefined;
  /** `timeoutMs` bounds one request to the mytoken server (default 30 s). */
  mytoken: { server: string; tokenFile: string; timeoutMs: number };
  listen: { host: string; port: number };
  /** The web config file (TLS, basic auth) for the endpoints, absolute; undefined for none. */
  web: { configFile: string | undefined };
  checks: CheckConfig[];
}

export type Schedule =
  | { kind: 'interval'; intervalMs: number }
  | {
      kind: 'cron';
      expression: string;
      /** The longest gap between two runs, for the "stopped running" alert. */
      periodMs: number;
    };

export interface CheckConfig {
  name: string;
  url: string;
  method: HttpMethod;
  headers: Record<string, string>;
  body: string | undefined;
  schedule: Schedule;
  timeoutMs: number;
  /** Space-separated scopes, or undefined for the token's default. */
  scope: string | undefined;
  /** Space-separated audiences, or undefined for none. */
  audience: string | undefined;
  expect: Expectations;
  /** A stable string of the check's definition; equal fingerprints mean the check is unchanged. */
  fingerprint: string;
}

export interface Expectations {
  /** Accepted status codes; by default any 2xx. */
  status: StatusSet;
  bodyMatches: RegExp | undefined;
  json: JsonAssertion[];
}

export interface StatusSet {
  has(status: number): boolean;
  readonly text: string;
}

export type JsonPath = (string | number)[];

export type JsonAssertion =
  | { path: JsonPath; pathText: string; op: 'equals'; value: unknown }
  | { path: JsonPath; pathText: string; op: 'matches'; pattern: RegExp }
  | { path: JsonPath; pathText: string; op: 'exists'; value: boolean };

type Obj = Record<string, unknown>;

/** Reads and checks a config file. Relative paths inside it are resolved against its folder. */
export async function loadConfig(file: string): Promise<ProbeConfig> {
  const absolute = path.resolve(file);
  let text: string;
  try {
    text = await readFile(absolute, 'utf8');
  } catch (cause) {
    const code = (cause as { code?: string }).code ?? 'error';
    throw new ProbeError(
      'ERR_PROBE_CONFIG_UNREADABLE',
      `cannot read config ${absolute} (${code})`,
      {
        cause,
      },
    );
  }
  return parseConfig(text, absolute);
}

/** Parses config text; `file` is used for messages and to resolve relative paths. */
export function parseConfig(text: string, file?: string): ProbeConfig {
  const doc = parseDocument(text, { uniqueKeys: true });
  const problem = doc.errors[0] ?? doc.warnings[0];
  if (problem !== undefined) {
    const first = (problem.message.split('\n')[0] ?? problem.code).replace(/:$/, '');
    throw new ConfigError('', `invalid YAML: ${lowerFirst(first)}`, { cause: problem });
  }
  let root: unknown;
  try {
    root = doc.toJS({ maxAliasCount: 100 });
  } catch (cause) {
    const why = cause instanceof Error ? cause.message : 'cannot be read';
    throw new ConfigError('', `invalid YAML: ${lowerFirst(why)}`, { cause });
  }
  const base = file === undefined ? process.cwd() : path.dirname(file);
  return validateConfig(root, base, file);
}

function validateConfig(root: unknown, base: string, file: string | undefined): ProbeConfig {
  if (root === undefined || root === null) throw new ConfigError('', 'the config is empty');
  const top = object(root, '', 'the config must be a mapping');
  onlyKeys(top, '', ['mytoken', 'listen', 'web', 'defaults', 'checks']);
  const mytoken = object(top.mytoken, 'mytoken');
  onlyKeys(mytoken, 'mytoken', ['server', 'token_file', 'timeout']);
  const web = optional(top.web, (v) => object(v, 'web')) ?? {};
  onlyKeys(web, 'web', ['config_file']);
  const defaults = checkDefaults(top.defaults);
  const checks = list(top.checks, 'checks').map((c, i) => checkConfig(c, `checks[${i}]`, defaults));
  if (checks.length === 0) throw new ConfigError('checks', 'at least one check is needed');
  uniqueNames(checks);
  return {
    file,
    mytoken: {
      server: serverUrl(mytoken.server, 'mytoken.server'),
      tokenFile: path.resolve(base, string(mytoken.token_file, 'mytoken.token_file')),
      timeoutMs:
        optional(mytoken.timeout, (v) => duration(v, 'mytoken.timeout', MIN_TIMEOUT_MS)) ??
        DEFAULT_MYTOKEN_TIMEOUT_MS,
    },
    listen: listenAddress(top.listen ?? DEFAULT_LISTEN, 'listen'),
    web: {
      configFile: optional(web.config_file, (v) =>
        path.resolve(base, string(v, 'web.config_file')),
      ),
    },
    checks,
  };
}

interface Defaults {
  intervalMs: number | undefined;
  timeoutMs: number | undefined;
  scope: string | undefined;
  audience: string | undefined;
}

function checkDefaults(value: unknown): Defaults {
  if (value === undefined || value === null) {
    return { intervalMs: undefined, timeoutMs: undefined, scope: undefined, audience: undefined };
  }
  const d = object(value, 'defaults');
  onlyKeys(d, 'defaults', ['interval', 'timeout', 'scope', 'audience']);
  return {
    intervalMs: optional(d.interval, (v) => interval(v, 'defaults.interval')),
    timeoutMs: optional(d.timeout, (v) => duration(v, 'defaults.timeout', MIN_TIMEOUT_MS)),
    scope: optional(d.scope, (v) => words(v, 'defaults.scope')),
    audience: optional(d.audience, (v) => words(v, 'defaults.audience')),
  };
}

const CHECK_KEYS = [
  'name',
  'url',
  'method',
  'headers',
  'body',
  'interval',
  'schedule',
  'timeout',
  'scope',
  'audience',
  'expect',
];

function checkConfig(value: unknown, at: string, defaults: Defaults): CheckConfig {
  const c = object(value, at);
  onlyKeys(c, at, CHECK_KEYS);
  const name = string(c.name, `${at}.name`);
  if (!NAME_PATTERN.test(name)) {
    throw new ConfigError(
      `${at}.name`,
      `"${name}" is not a valid name (letters, digits, "_", ".", ":", "-"; at most 100)`,
    );
  }
  const method = optional(c.method, (v) => httpMethod(v, `${at}.method`)) ?? 'GET';
  const body = optional(c.body, (v) => string(v, `${at}.body`, true));
  if (body !== undefined && (method === 'GET' || method === 'HEAD')) {
    throw new ConfigError(`${at}.body`, `a ${method} request cannot carry a body`);
  }
  const schedule = checkSchedule(c, at, defaults);
  const timeoutMs = checkTimeout(c.timeout, `${at}.timeout`, schedule, defaults);
  const check: Omit<CheckConfig, 'fingerprint'> = {
    name,
    url: targetUrl(c.url, `${at}.url`),
    method,
    headers: optional(c.headers, (v) => headers(v, `${at}.headers`)) ?? {},
    body,
    schedule,
    timeoutMs,
    scope: optional(c.scope, (v) => words(v, `${at}.scope`)) ?? defaults.scope,
    audience: optional(c.audience, (v) => words(v, `${at}.audience`)) ?? defaults.audience,
    expect: expectations(c.expect, `${at}.expect`),
  };
  return { ...check, fingerprint: fingerprint(check) };
}

function checkSchedule(c: Obj, at: string, defaults: Defaults): Schedule {
  if (c.interval !== undefined && c.schedule !== undefined) {
    throw new ConfigError(`${at}.schedule`, 'give either "interval" or "schedule", not both');
  }
  if (c.schedule !== undefined) return cronSchedule(c.schedule, `${at}.schedule`);
  const intervalMs =
    optional(c.interval, (v) => interval(v, `${at}.interval`)) ??
    defaults.intervalMs ??
    DEFAULT_INTERVAL_MS;
  return { kind: 'interval', intervalMs };
}

function checkTimeout(value: unknown, at: string, schedule: Schedule, defaults: Defaults): number {
  const period = schedule.kind === 'interval' ? schedule.intervalMs : schedule.periodMs;
  const given = optional(value, (v) => duration(v, at, MIN_TIMEOUT_MS)) ?? defaults.timeoutMs;
  if (given === undefined) return Math.min(DEFAULT_TIMEOUT_MS, period);
  if (given > period) {
    throw new ConfigError(at, `${formatDuration(given)} is longer than the check's period`);
  }
  return given;
}

function expectations(value: unknown, at: string): Expectations {
  if (value === undefined || value === null) {
    return { status: statusSet([], at), bodyMatches: undefined, json: [] };
  }
  const e = object(value, at);
  onlyKeys(e, at, ['status', 'body_matches', 'json']);
  return {
    status: statusSet(e.status === undefined ? [] : list(e.status, `${at}.status`), `${at}.status`),
    bodyMatches: optional(e.body_matches, (v) => regex(v, `${at}.body_matches`)),
    json:
      optional(e.json, (v) =>
        list(v, `${at}.json`).map((a, i) => jsonAssertion(a, `${at}.json[${i}]`)),
      ) ?? [],
  };
}

// Checks with the same accepted statuses share one set (most use the default 2xx).
const statusSets = new Map<string, StatusSet>();

function statusSet(items: unknown[], at: string): StatusSet {
  const set = newStatusSet(items, at);
  const shared = statusSets.get(set.text);
  if (shared !== undefined) return shared;
  statusSets.set(set.text, set);
  return set;
}

function newStatusSet(items: unknown[], at: string): StatusSet {
  const allowed = new Uint8Array(600);
  const texts: string[] = [];
  items.forEach((item, i) => {
    const where = `${at}[${i}]`;
    if (typeof item === 'number' && Number.isInteger(item) && item >= 100 && item <= 599) {
      allowed[item] = 1;
      texts.push(String(item));
      return;
    }
    if (typeof item === 'string' && /^[1-5]xx$/i.test(item)) {
      const first = Number(item[0]) * 100;
      allowed.fill(1, first, first + 100);
      texts.push(item.toLowerCase());
      return;
    }
    throw new ConfigError(where, 'must be a status code (100-599) or a class such as "2xx"');
  });
  if (texts.length === 0) {
    allowed.fill(1, 200, 300);
    texts.push('2xx');
  }
  return { has: (status) => allowed[status] === 1, text: texts.join(',') };
}

function jsonAssertion(value: unknown, at: string): JsonAssertion {
  const a = object(value, at);
  onlyKeys(a, at, ['path', 'equals', 'matches', 'exists']);
  const pathText = string(a.path, `${at}.path`, true);
  const jsonPath = parseJsonPath(pathText, `${at}.path`);
  const ops = ['equals', 'matches', 'exists'].filter((k) => a[k] !== undefined);
  if (ops.length !== 1) {
    throw new ConfigError(at, 'give exactly one of "equals", "matches" or "exists"');
  }
  if (a.equals !== undefined) return { path: jsonPath, pathText, op: 'equals', value: a.equals };
  if (a.matches !== undefined) {
    return { path: jsonPath, pathText, op: 'matches', pattern: regex(a.matches, `${at}.matches`) };
  }
  if (typeof a.exists !== 'boolean') throw new ConfigError(`${at}.exists`, 'must be true or false');
  return { path: jsonPath, pathText, op: 'exists', value: a.exists };
}

/** `status`, `data.items[0].id`, `$.data["a.b"]`; an empty path or `$` is the whole body. */
export function parseJsonPath(text: string, at = 'path'): JsonPath {
  const rest = text.replace(/^\$\.?/, '');
  const out: JsonPath = [];
  const token = /\.?([^.[\]"]+)|\[(\d+)\]|\["([^"]*)"\]/y;
  let index = 0;
  while (index < rest.length) {
    token.lastIndex = index;
    const m = token.exec(rest);
    if (m === null || (index === 0 && rest.startsWith('.'))) {
      throw new ConfigError(at, `"${text}" is not a valid path (use a.b[0].c)`);
    }
    if (m[2] !== undefined) out.push(Number(m[2]));
    else out.push(m[1] ?? m[3] ?? '');
    index = token.lastIndex;
  }
  return out;
}

function uniqueNames(checks: CheckConfig[]): void {
  const seen = new Map<string, number>();
  checks.forEach((check, i) => {
    const first = seen.get(check.name);
    if (first !== undefined) {
      throw new ConfigError(
        `checks[${i}].name`,
        `"${check.name}" is already used by checks[${first}]`,
      );
    }
    seen.set(check.name, i);
  });
}

function cronSchedule(value: unknown, at: string): Schedule {
  const expression = string(value, at);
  const validation = cron.validateDetailed(expression);
  if (!validation.valid) {
    const first = validation.errors[0];
    const why = first === undefined ? 'invalid' : `${first.field}: ${first.message}`;
    throw new ConfigError(at, `"${expression}" is not a cron expression (${why})`);
  }
  const task = cron.createTask(expression, () => undefined, { timezone: 'UTC' });
  try {
    const runs = task.getNextRuns(60).map((d) => d.getTime());
    let periodMs = 0;
    for (let i = 1; i < runs.length; i++) periodMs = Math.max(periodMs, runs[i]! - runs[i - 1]!);
    if (runs.length < 2) throw new ConfigError(at, `"${expression}" does not repeat`);
    return { kind: 'cron', expression, periodMs };
  } finally {
    void task.destroy();
  }
}

function interval(value: unknown, at: string): number {
  return duration(value, at, MIN_INTERVAL_MS);
}

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** Parses `500ms`, `30s`, `5m`, `1h30m`, `1d` into milliseconds. */
export function parseDuration(text: string): number | undefined {
  if (!/^(\d+(ms|s|m|h|d))+$/.test(text)) return undefined;
  let total = 0;
  for (const m of text.matchAll(/(\d+)(ms|s|m|h|d)/g)) total += Number(m[1]) * UNIT_MS[m[2]!]!;
  return total;
}

export function formatDuration(ms: number): string {
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000}h`;
  if (ms % 60_000 === 0) return `${ms / 60_000}m`;
  if (ms % 1000 === 0) return `${ms / 1000}s`;
  return `${ms}ms`;
}

function duration(value: unknown, at: string, min: number): number {
  const text = string(value, at);
  const ms = parseDuration(text);
  if (ms === undefined) {
    throw new ConfigError(at, `"${text}" is not a duration (use a unit: 500ms, 30s, 5m, 1h)`);
  }
  if (ms < min)
    throw new ConfigError(at, `${text} is shorter than the minimum ${formatDuration(min)}`);
  return ms;
}

function serverUrl(value: unknown, at: string): string {
  const text = string(value, at);
  try {
    return checkServerUrl(text);
  } catch (error) {
    if (error instanceof MytokenError) throw new ConfigError(at, error.message, { cause: error });
    throw error;
  }
}

function targetUrl(value: unknown, at: string): string {
  const text = string(value, at);
  if (!URL.canParse(text)) throw new ConfigError(at, `"${text}" is not a URL`);
  const url = new URL(text);
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new ConfigError(at, `"${url.protocol}" URLs are not supported (use http or https)`);
  }
  if (url.username !== '' || url.password !== '') {
    throw new ConfigError(at, 'must not carry credentials (the probe sends the access token)');
  }
  url.hash = '';
  return url.href;
}

function headers(value: unknown, at: string): Record<string, string> {
  const h = object(value, at);
  const out: Record<string, string> = {};
  for (const [name, v] of Object.entries(h)) {
    const where = `${at}.${name}`;
    if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(name)) {
      throw new ConfigError(where, 'is not a valid header name');
    }
    if (/^(authorization|host|content-length|transfer-encoding|connection)$/i.test(name)) {
      throw new ConfigError(where, 'is set by the probe and cannot be configured');
    }
    const text = typeof v === 'number' ? String(v) : string(v, where, true);
    if (/[\r\n\0]/.test(text)) throw new ConfigError(where, 'must not contain line breaks');
    out[name] = text;
  }
  return out;
}

function httpMethod(value: unknown, at: string): HttpMethod {
  const text = string(value, at).toUpperCase();
  const found = METHODS.find((m) => m === text);
  if (found === undefined) throw new ConfigError(at, `must be one of ${METHODS.join(', ')}`);
  return found;
}

function regex(value: unknown, at: string): RegExp {
  const text = string(value, at);
  try {
    return new RegExp(text, 'u');
  } catch (cause) {
    throw new ConfigError(at, `"${text}" is not a valid regular expression`, { cause });
  }
}

function words(value: unknown, at: string): string | undefined {
  const items = Array.isArray(value)
    ? value.map((v, i) => string(v, `${at}[${i}]`))
    : string(value, at, true).split(/\s+/);
  const cleaned = items.map((w) => w.trim()).filter((w) => w !== '');
  if (cleaned.some((w) => /\s/.test(w)))
    throw new ConfigError(at, 'list items must be single words');
  return cleaned.length === 0 ? undefined : cleaned.join(' ');
}

function listenAddress(value: unknown, at: string): { host: string; port: number } {
  const text = string(value, at);
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]\s]*)):(\d{1,5})$/.exec(text);
  const port = Number(m?.[3]);
  if (m === null || port > 65535) {
    throw new ConfigError(at, `"${text}" is not host:port (e.g. 127.0.0.1:9464, [::1]:9464)`);
  }
  return { host: m[1] ?? m[2] ?? '', port };
}

function object(value: unknown, at: string, problem = 'must be a mapping'): Obj {
  if (value === undefined || value === null) throw new ConfigError(at, 'is required');
  if (typeof value !== 'object' || Array.isArray(value)) throw new ConfigError(at, problem);
  return value as Obj;
}

function list(value: unknown, at: string): unknown[] {
  if (value === undefined || value === null) throw new ConfigError(at, 'is required');
  if (!Array.isArray(value)) throw new ConfigError(at, 'must be a list');
  return value;
}

function string(value: unknown, at: string, allowEmpty = false): string {
  if (value === undefined || value === null) throw new ConfigError(at, 'is required');
  if (typeof value !== 'string') throw new ConfigError(at, 'must be a string');
  if (!allowEmpty && value.trim() === '') throw new ConfigError(at, 'must not be empty');
  return value;
}

function optional<T>(value: unknown, parse: (v: unknown) => T): T | undefined {
  return value === undefined || value === null ? undefined : parse(value);
}

function onlyKeys(o: Obj, at: string, allowed: readonly string[]): void {
  for (const key of Object.keys(o)) {
    if (!allowed.includes(key)) {
      const where = at === '' ? key : `${at}.${key}`;
      throw new ConfigError(where, `unknown key (allowed: ${allowed.join(', ')})`);
    }
  }
}

function lowerFirst(text: string): string {
  return `${text.charAt(0).toLowerCase()}${text.slice(1)}`;
}

function fingerprint(check: Omit<CheckConfig, 'fingerprint'>): string {
  const text = JSON.stringify(check, (_key, v: unknown) => {
    if (v instanceof RegExp) return `/${v.source}/${v.flags}`;
    if (typeof v === 'object' && v !== null && 'text' in v && 'has' in v) {
      return (v as StatusSet).text;
    }
    return v;
  });
  return createHash('sha256').update(text).digest('base64url');
}
