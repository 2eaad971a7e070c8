/**
 * The Action against a misbehaving GitHub (transient faults retried within a bound, a final failure reported as a
 * stale secret), behind a forward proxy, and against a GitHub Enterprise Server style API URL.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { GITHUB_HINT, staleAfterRotationHint } from '../../src/action/messages.ts';
import { startGitHubFake } from '../support/github-fake.ts';
import { startHttpProxy } from '../support/http-proxy.ts';
import { selfSignedCert } from '../support/tls-cert.ts';
import { GITHUB_TOKENS, errorLine } from './harness.ts';
import { REPO_SCOPE, startFixture, type Fixture } from './fixture.ts';

let f: Fixture;

beforeAll(async () => {
  f = await startFixture();
});

afterAll(async () => {
  await f?.close();
});

const SECRET_PATH = '/repos/acme/app/actions/secrets/MYTOKEN';
const KEY_PATH = '/repos/acme/app/actions/secrets/public-key';

/** Shrinks the GitHub backoff so that a lasting outage costs milliseconds, not a minute. */
const FAST_RETRIES = { MYTOKEN_ACTION_RETRY_BASE_MS: '5' };

function puts(): number {
  return f.github.requests.filter((r) => r.method === 'PUT').length;
}

describe('GitHub faults during the write-back', () => {
  const transient = [
    { name: 'two 502s', fault: { kind: 'status', status: 502 } as const, times: 2 },
    { name: 'a 500', fault: { kind: 'status', status: 500 } as const, times: 1 },
    {
      name: 'a secondary rate limit (403 with retry-after)',
      fault: { kind: 'secondary-rate-limit', retryAfter: 1 } as const,
      times: 1,
    },
    {
      name: 'a secondary rate limit (429 with retry-after)',
      fault: { kind: 'secondary-rate-limit', status: 429, retryAfter: 1 } as const,
      times: 1,
    },
    { name: 'a connection reset', fault: { kind: 'reset' } as const, times: 1 },
    {
      name: 'a reset after the write landed',
      fault: { kind: 'reset', afterHandling: true } as const,
      times: 1,
    },
  ];

  test.each(transient)('$name: retried, and the write succeeds', async ({ fault, times }) => {
    const token = await f.seed();
    f.github.clearRequests();
    f.github.inject({ method: 'PUT', path: SECRET_PATH, fault, times });
    const run = await f.run(token, { env: FAST_RETRIES });

    expect(run.code, errorLine(run)).toBe(0);
    expect(puts()).toBe(times + 1);
    expect(f.github.pendingFaults()).toBe(0);
    const stored = f.stored() as string;
    expect(stored).not.toBe(token);
    expect(run.stdout).toContain(`::add-mask::${stored}`);
  });

  test('a primary rate limit on the public key is waited out', async () => {
    const token = await f.seed();
    f.github.inject({
      method: 'GET',
      path: KEY_PATH,
      fault: {
        kind: 'primary-rate-limit',
        status: 429,
        resetAt: Math.floor(Date.now() / 1000) + 1,
      },
    });
    const run = await f.run(token);

    expect(run.code, errorLine(run)).toBe(0);
    expect(f.stored()).not.toBe(token);
  });

  test('a GitHub outage before the exchange leaves the mytoken unused', async () => {
    const token = await f.seed();
    const before = f.dev.stats().at_success;
    f.github.inject({
      method: 'GET',
      path: KEY_PATH,
      fault: { kind: 'status', status: 503 },
      times: 5,
    });
    const run = await f.run(token, { env: FAST_RETRIES });

    expect(run.code).toBe(1);
    expect(errorLine(run)).toBe(
      `GitHub read the public key for repository secret MYTOKEN failed after 5 attempts (503: Service Unavailable). ${GITHUB_HINT}`,
    );
    expect(f.dev.stats().at_success).toBe(before);
    expect(f.stored()).toBe(token);
  });

  test('a lasting outage after the rotation is reported as a stale secret', async () => {
    const token = await f.seed();
    f.github.clearRequests();
    f.github.inject({
      method: 'PUT',
      path: SECRET_PATH,
      fault: { kind: 'status', status: 500 },
      times: 8,
    });
    const run = await f.run(token, { env: FAST_RETRIES });

    expect(run.code).toBe(1);
    expect(errorLine(run)).toBe(
      'the mytoken was rotated but writing it back to repository secret MYTOKEN failed: ' +
        'GitHub write repository secret MYTOKEN failed after 8 attempts (500: Server Error). ' +
        staleAfterRotationHint('MYTOKEN'),
    );
    expect(puts()).toBe(8);
    expect(f.stored()).toBe(token);
    expect(run.outputs).toEqual({});
  });
});

describe('proxies', () => {
  test('HTTP_PROXY carries the mytoken and GitHub requests', async () => {
    const proxy = await startHttpProxy();
    try {
      const token = await f.seed();
      const run = await f.run(token, { env: { HTTP_PROXY: proxy.url } });

      expect(run.code, errorLine(run)).toBe(0);
      const targets = new Set(proxy.records.filter((r) => r.relayed).map((r) => r.target));
      expect(targets).toContain(`127.0.0.1:${f.dev.port}`);
      expect(targets).toContain(`127.0.0.1:${f.github.port}`);
      expect(f.stored()).not.toBe(token);
    } finally {
      await proxy.close();
    }
  });

  test('NO_PROXY bypasses the proxy', async () => {
    const proxy = await startHttpProxy();
    try {
      const token = await f.seed();
      const run = await f.run(token, { env: { HTTP_PROXY: proxy.url, NO_PROXY: '127.0.0.1' } });

      expect(run.code, errorLine(run)).toBe(0);
      expect(proxy.records).toEqual([]);
    } finally {
      await proxy.close();
    }
  });
});

describe('GitHub Enterprise Server', () => {
  test('an https API under /api/v3, reached through HTTPS_PROXY', async () => {
    const tls = await selfSignedCert();
    const ghes = await startGitHubFake({
      tokens: { [GITHUB_TOKENS.writer]: 'write' },
      pathPrefix: '/api/v3',
      tls,
    });
    const proxy = await startHttpProxy();
    try {
      const token = await f.mint();
      ghes.setSecret(REPO_SCOPE, 'MYTOKEN', token, { updatedAt: new Date(Date.now() - 60_000) });
      const run = await f.run(token, {
        env: {
          GITHUB_API_URL: ghes.url,
          HTTPS_PROXY: proxy.url,
          NODE_EXTRA_CA_CERTS: tls.certPath,
        },
      });

      expect(run.code, errorLine(run)).toBe(0);
      expect(ghes.secret(REPO_SCOPE, 'MYTOKEN')?.value).not.toBe(token);
      expect(ghes.requests.every((r) => r.path.startsWith('/api/v3/'))).toBe(true);
      expect(proxy.records.some((r) => r.target === `127.0.0.1:${ghes.port}` && r.relayed)).toBe(
        true,
      );
    } finally {
      await proxy.close();
      await ghes.close();
      await tls.remove();
    }
  });
});
