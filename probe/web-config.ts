/**
 * The web config file that protects `/metrics` and `/status`, in the format of the Prometheus
 * exporter toolkit (`--web.config.file`), so that one file serves the probe and the exporters
 * beside it. Supported subset: `tls_server_config` with `cert_file`, `key_file`, `client_ca_file`,
 * `client_auth_type`, `min_version`, `max_version`; and `basic_auth_users` (user → bcrypt hash).
 * Any other key is an error, so a setting is never silently ignored.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import path from 'node:path';
import type { SecureVersion, TlsOptions } from 'node:tls';
import bcrypt from 'bcryptjs';
import { parseDocument } from 'yaml';
import { ConfigError } from './errors.ts';
import type { WebOptions } from './http.ts';

const TLS_KEYS = [
  'cert_file',
  'key_file',
  'client_ca_file',
  'client_auth_type',
  'min_version',
  'max_version',
];
const VERSIONS: Record<string, SecureVersion> = {
  TLS10: 'TLSv1',
  TLS11: 'TLSv1.1',
  TLS12: 'TLSv1.2',
  TLS13: 'TLSv1.3',
};
const CLIENT_AUTH = ['NoClientCert', 'RequireAndVerifyClientCert', 'VerifyClientCertIfGiven'];
/** Successful logins remembered, so that a scrape every few seconds costs one bcrypt, not each. */
const CACHE_SIZE = 64;
/** Checked for unknown users, so that a wrong name takes as long as a wrong password. */
const DUMMY_HASH = '$2b$10$abcdefghijklmnopqrstuuj7m4XYqbm74SxoBcXyw8to0CQ061DVG';

/** The bcrypt forms `htpasswd -B` and the exporter toolkit write; checked by bcryptjs. */
const BCRYPT_HASH = /^\$2[aby]\$(0[4-9]|[12]\d|3[01])\$[./A-Za-z0-9]{53}$/;

type Obj = Record<string, unknown>;

/** Reads a web config file; errors are `ConfigError`s whose path starts with the file name. */
export function loadWebConfig(file: string): WebOptions {
  const absolute = path.resolve(file);
  const at = (key: string) => `${absolute}: ${key}`;
  let text: string;
  try {
    text = readFileSync(absolute, 'utf8');
  } catch (cause) {
    const code = (cause as { code?: string }).code ?? 'error';
    throw new ConfigError('web.config_file', `cannot read ${absolute} (${code})`, { cause });
  }
  const doc = parseDocument(text, { uniqueKeys: true });
  if (doc.errors.length > 0) throw new ConfigError(absolute, 'invalid YAML');
  const root = (doc.toJS() ?? {}) as unknown;
  const top = mapping(root, at(''));
  onlyKeys(top, absolute, '', ['tls_server_config', 'basic_auth_users']);
  const web: WebOptions = {};
  if (top.tls_server_config !== undefined && top.tls_server_config !== null) {
    web.tls = tlsOptions(mapping(top.tls_server_config, at('tls_server_config')), absolute);
  }
  if (top.basic_auth_users !== undefined && top.basic_auth_users !== null) {
    web.authorize = basicAuth(mapping(top.basic_auth_users, at('basic_auth_users')), absolute);
  }
  return web;
}

function tlsOptions(t: Obj, file: string): TlsOptions {
  onlyKeys(t, file, 'tls_server_config', TLS_KEYS);
  const read = (key: string) => {
    const name = t[key];
    if (typeof name !== 'string' || name === '') {
      throw new ConfigError(`${file}: tls_server_config.${key}`, 'is required');
    }
    const resolved = path.resolve(path.dirname(file), name);
    try {
      return readFileSync(resolved);
    } catch (cause) {
      const code = (cause as { code?: string }).code ?? 'error';
      throw new ConfigError(
        `${file}: tls_server_config.${key}`,
        `cannot read ${resolved} (${code})`,
      );
    }
  };
  const options: TlsOptions = {
    cert: read('cert_file'),
    key: read('key_file'),
  };
  const version = (key: string) => {
    if (t[key] === undefined || t[key] === null) return undefined;
    const v = VERSIONS[String(t[key])];
    if (v === undefined) {
      throw new ConfigError(
        `${file}: tls_server_config.${key}`,
        'must be TLS10, TLS11, TLS12 or TLS13',
      );
    }
    return v;
  };
  options.minVersion = version('min_version') ?? 'TLSv1.2';
  const max = version('max_version');
  if (max !== undefined) options.maxVersion = max;
  const auth = t.client_auth_type ?? 'NoClientCert';
  if (typeof auth !== 'string' || !CLIENT_AUTH.includes(auth)) {
    throw new ConfigError(
      `${file}: tls_server_config.client_auth_type`,
      `must be one of ${CLIENT_AUTH.join(', ')}`,
    );
  }
  if (auth !== 'NoClientCert') {
    options.ca = read('client_ca_file');
    options.requestCert = true;
    options.rejectUnauthorized = auth === 'RequireAndVerifyClientCert';
  }
  return options;
}

function basicAuth(users: Obj, file: string): (req: IncomingMessage) => Promise<boolean> {
  const hashes = new Map<string, string>();
  for (const [user, hash] of Object.entries(users)) {
    if (typeof hash !== 'string' || !BCRYPT_HASH.test(hash)) {
      throw new ConfigError(`${file}: basic_auth_users.${user}`, 'must be a bcrypt hash ($2y$…)');
    }
    hashes.set(user, hash);
  }
  const remembered = new Set<string>();
  return async (req) => {
    const credentials = parseBasic(req.headers.authorization);
    if (credentials === undefined) return false;
    const hash = hashes.get(credentials.user);
    const key = createHash('sha256')
      .update(`${credentials.user}\u0000${credentials.password}\u0000${hash ?? ''}`)
      .digest('base64');
    if (hash !== undefined && remembered.has(key)) return true;
    const ok =
      (await bcrypt.compare(credentials.password, hash ?? DUMMY_HASH)) && hash !== undefined;
    if (!ok) return false;
    if (remembered.size >= CACHE_SIZE) remembered.clear();
    remembered.add(key);
    return true;
  };
}

function parseBasic(header: string | undefined): { user: string; password: string } | undefined {
  const m = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header ?? '');
  if (m === null) return undefined;
  const text = Buffer.from(m[1]!, 'base64').toString('utf8');
  const colon = text.indexOf(':');
  if (colon < 0) return undefined;
  return { user: text.slice(0, colon), password: text.slice(colon + 1) };
}

function mapping(value: unknown, at: string): Obj {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new ConfigError(at.replace(/: $/, ''), 'must be a mapping');
  }
  return value as Obj;
}

function onlyKeys(o: Obj, file: string, at: string, allowed: string[]): void {
  for (const key of Object.keys(o)) {
    if (allowed.includes(key)) continue;
    const where = `${file}: ${at === '' ? key : `${at}.${key}`}`;
    throw new ConfigError(where, `unknown or unsupported key (supported: ${allowed.join(', ')})`);
  }
}
