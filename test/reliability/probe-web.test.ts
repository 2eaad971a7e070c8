/**
 * Protection of the probe's endpoints (issue #5): a web config file in the Prometheus exporter
 * toolkit's format gives `/metrics` and `/status` TLS and basic auth (bcrypt hashes), `/healthz`
 * and `/readyz` stay open. bcrypt is checked against hashes made by libxcrypt (the system's
 * `crypt(3)`); the endpoints are tested with a self-signed certificate, in-process and through the
 * bin's `--web.config.file`.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Agent, fetch as undiciFetch } from 'undici';
import { describe, expect, test } from 'vitest';
import bcrypt from 'bcryptjs';

import { loadWebConfig } from '../../probe/web-config.ts';
import { runBin, spawnProbe, startProbe, waitFor } from '../probe/helpers.ts';
import { selfSignedCert } from '../support/tls-cert.ts';
import { expectNoTokens, probeBed, type ProbeBed } from './probe-support.ts';

/** The check the probe makes, through bcryptjs; anything that is not a usable hash is a refusal. */
function verifyBcrypt(password: string, hash: string): boolean {
  try {
    return bcrypt.compareSync(password, hash);
  } catch {
    return false;
  }
}

/** [password, hash], hashed by libxcrypt 4.4 (Python's `crypt.crypt`). */
const VECTORS: [string, string][] = [
  ['U*U', '$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW'],
  ['secret', '$2b$04$abcdefghijklmnopqrstuu2r9OfJnfCsdneAXAGHnS4UpFFP8WIrW'],
  ['pw', '$2b$10$abcdefghijklmnopqrstuuj7m4XYqbm74SxoBcXyw8to0CQ061DVG'],
  ['', '$2b$04$0123456789abcdefghijkeagcC/LUFLxqVIZJNW0EnkwdNPowsYWi'],
  ['pässwörd ✓', '$2b$05$ABCDEFGHIJKLMNOPQRSTUuywueDnjkj8KM1NgzGBXnSllVDVPXTPu'],
  ['x'.repeat(80), '$2b$04$zyxwvutsrqponmlkjihgfeUIb02e2j50rSgXWN4Rr0POqFVytJFRu'],
  ['prometheus', '$2y$06$Q5mh8v1NRcKr.FoW4tBnGO4JjWT7xUxZxae0DBsoP7CnWWOgYPs5e'],
];
const PASSWORD = 'prometheus';
const HASH = '$2y$06$Q5mh8v1NRcKr.FoW4tBnGO4JjWT7xUxZxae0DBsoP7CnWWOgYPs5e';

/** Hashes with the system's crypt(3), when Python 3.11's `crypt` module is there. */
function systemCrypt(password: string, salt: string): string | undefined {
  try {
    const code = 'import crypt,sys; print(crypt.crypt(sys.argv[1], sys.argv[2]))';
    return execFileSync('/usr/bin/python3', ['-W', 'ignore', '-c', code, password, salt], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    }).trim();
  } catch {
    return undefined;
  }
}

describe('bcrypt', () => {
  test.each(VECTORS)('matches libxcrypt for %j', (password, hash) => {
    expect(verifyBcrypt(password, hash)).toBe(true);
    expect(verifyBcrypt(`!${password}`, hash)).toBe(false);
  });

  test('matches the system crypt(3) on random passwords and salts, when it is available', (ctx) => {
    const alphabet = './ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
    for (let i = 0; i < 5; i++) {
      const password = randomBytes(1 + i * 7).toString('base64');
      const salt = Array.from(randomBytes(21), (b) => alphabet[b % 64]).join('') + 'e';
      const hash = systemCrypt(password, `$2b$04$${salt}`);
      if (hash === undefined || !hash.startsWith('$2b$')) return ctx.skip();
      expect(verifyBcrypt(password, hash)).toBe(true);
    }
  });

  test('refuses what is not a bcrypt hash', () => {
    expect(verifyBcrypt('a', '{SHA}abc')).toBe(false);
    expect(verifyBcrypt('a', '$2b$03$abcdefghijklmnopqrstuu2r9OfJnfCsdneAXAGHnS4UpFFP8WIrW')).toBe(
      false,
    );
  });
});

async function webBed(): Promise<{
  bed: ProbeBed;
  webFile: string;
  agent: Agent;
  close(): Promise<void>;
}> {
  const bed = await probeBed();
  const tls = await selfSignedCert();
  await writeFile(join(bed.dir, 'web.key'), tls.key, { mode: 0o600 });
  await writeFile(join(bed.dir, 'web.crt'), tls.cert);
  const webFile = join(bed.dir, 'web.yml');
  await writeFile(
    webFile,
    [
      'tls_server_config:',
      '  cert_file: web.crt',
      '  key_file: web.key',
      'basic_auth_users:',
      `  prometheus: "${HASH}"`,
      '',
    ].join('\n'),
  );
  const agent = new Agent({ connect: { ca: tls.cert } });
  return {
    bed,
    webFile,
    agent,
    close: async () => {
      await agent.close();
      await tls.remove();
      await bed.close();
    },
  };
}

function basic(user: string, password: string): string {
  return `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
}

describe('the endpoints behind a web config file', () => {
  test('serve /metrics and /status over TLS to the configured user only; /healthz and /readyz stay open', async () => {
    const w = await webBed();
    const probe = await (async () => {
      await w.bed.writeConfig({ extra: 'web:\n  config_file: web.yml' });
      return startProbe(w.bed.configFile);
    })();
    try {
      const base = probe.base.replace('http:', 'https:');
      const get = (path: string, authorization?: string) =>
        undiciFetch(`${base}${path}`, {
          dispatcher: w.agent,
          headers: authorization === undefined ? {} : { authorization },
        });
      for (const path of ['/metrics', '/status']) {
        const open = await get(path);
        expect(open.status).toBe(401);
        expect(open.headers.get('www-authenticate')).toBe('Basic realm="mytoken-probe"');
        expect((await get(path, basic('prometheus', 'wrong'))).status).toBe(401);
        expect((await get(path, basic('nobody', PASSWORD))).status).toBe(401);
        expect((await get(path, 'Bearer x')).status).toBe(401);
      }
      expect((await get('/healthz')).status).toBe(200);
      expect((await get('/readyz')).status).toBe(200);
      const metrics = await waitFor(async () => {
        const text = await (await get('/metrics', basic('prometheus', PASSWORD))).text();
        return text.includes('mytoken_probe_check_success{check="c"} 1') && text;
      });
      const status = await (await get('/status', basic('prometheus', PASSWORD))).text();
      expect(JSON.parse(status)).toMatchObject({ checks: [{ name: 'c' }] });
      // Plain HTTP on the TLS port gets no answer with data.
      await expect(fetch(`${probe.base}/healthz`)).rejects.toThrow();
      await w.bed.readToken();
      expectNoTokens(w.bed.canaries, { metrics, status, logs: probe.logs.join('\n') });
    } finally {
      await probe.close();
      await w.close();
    }
  }, 30_000);

  test('are protected through the bin with --web.config.file, which overrides the config', async () => {
    const w = await webBed();
    await w.bed.writeConfig({ extra: 'web:\n  config_file: missing.yml' });
    const probe = await spawnProbe(w.bed.configFile, ['--web.config.file', w.webFile]);
    try {
      const base = probe.base.replace('http:', 'https:');
      const res = await undiciFetch(`${base}/metrics`, { dispatcher: w.agent });
      expect(res.status).toBe(401);
      const ok = await undiciFetch(`${base}/metrics`, {
        dispatcher: w.agent,
        headers: { authorization: basic('prometheus', PASSWORD) },
      });
      expect(ok.status).toBe(200);
      expect(await ok.text()).toContain('mytoken_probe_build_info');
    } finally {
      await probe.stop('SIGTERM');
      await w.close();
    }
  }, 30_000);

  test('rejects a bad web config file in one line naming the key, exit 2', async () => {
    const w = await webBed();
    try {
      await w.bed.writeConfig({ extra: 'web:\n  config_file: web.yml' });
      const cases: [string, string][] = [
        ['basic_auth_users:\n  prometheus: plaintext\n', 'basic_auth_users.prometheus'],
        ['tls_server_config:\n  cert_file: web.crt\n', 'tls_server_config.key_file'],
        [
          'tls_server_config:\n  cert_file: nope.crt\n  key_file: web.key\n',
          'tls_server_config.cert_file',
        ],
        [
          'tls_server_config:\n  cert_file: web.crt\n  key_file: web.key\n  min_version: TLS9\n',
          'tls_server_config.min_version',
        ],
        ['http_server_config:\n  http2: false\n', 'http_server_config'],
        [
          'tls_server_config:\n  cert_file: web.crt\n  key_file: web.key\n  cipher_suites: [x]\n',
          'tls_server_config.cipher_suites',
        ],
      ];
      for (const [i, [text, key]] of cases.entries()) {
        await writeFile(w.webFile, text);
        expect(() => loadWebConfig(w.webFile)).toThrow(key);
        // Through the bin for a sample: --check-config for one, service mode for another.
        const modes = i === 0 ? [['--check-config']] : i === 2 ? [[]] : [];
        for (const args of modes) {
          const run = await runBin(['--config', w.bed.configFile, ...args]);
          expect(run.code).toBe(2);
          expect(run.stderr.trim().split('\n')).toHaveLength(1);
          expect(run.stderr).toContain(key);
          expect(run.stderr).not.toMatch(/^\s+at /m);
        }
      }
    } finally {
      await w.close();
    }
  }, 60_000);
});
