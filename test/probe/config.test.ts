import { describe, expect, it } from 'vitest';
import { parseConfig, parseDuration, parseJsonPath } from '../../probe/config.ts';
import { ConfigError } from '../../probe/errors.ts';

const HEAD = `mytoken:
  server: https://mytoken.example.org
  token_file: /var/lib/probe/mytoken
`;

function configWith(checks: string, extra = ''): string {
  return `${HEAD}${extra}checks:\n${checks}`;
}

const GOOD_CHECK = `  - name: api
    url: https://api.example.org/health
`;

function problem(text: string): { path: string; message: string } {
  try {
    parseConfig(text, '/etc/probe/probe.yml');
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    return { path: error.path, message: error.message };
  }
  throw new Error('config was accepted');
}

describe('parseConfig', () => {
  it('fills in defaults', () => {
    const config = parseConfig(configWith(GOOD_CHECK), '/etc/probe/probe.yml');
    expect(config.listen).toEqual({ host: '127.0.0.1', port: 9464 });
    expect(config.mytoken).toEqual({
      server: 'https://mytoken.example.org',
      tokenFile: '/var/lib/probe/mytoken',
      timeoutMs: 30_000,
    });
    const [check] = config.checks;
    expect(check).toMatchObject({
      name: 'api',
      method: 'GET',
      headers: {},
      schedule: { kind: 'interval', intervalMs: 60_000 },
      timeoutMs: 10_000,
      scope: undefined,
      audience: undefined,
    });
    expect(check!.expect.status.text).toBe('2xx');
    expect(check!.expect.status.has(204)).toBe(true);
    expect(check!.expect.status.has(301)).toBe(false);
  });

  it('resolves a relative token file against the config folder', () => {
    const text = configWith(GOOD_CHECK).replace('/var/lib/probe/mytoken', 'state/mytoken');
    expect(parseConfig(text, '/etc/probe/probe.yml').mytoken.tokenFile).toBe(
      '/etc/probe/state/mytoken',
    );
  });

  it('reads every check key', () => {
    const config = parseConfig(
      configWith(
        `  - name: orders.create
    url: https://api.example.org/orders?dry_run=1#frag
    method: post
    headers: { X-Request-Source: probe, X-Count: 3 }
    body: '{"dry": true}'
    schedule: '*/5 * * * *'
    timeout: 2s500ms
    scope: [openid, storage.read]
    audience: https://api.example.org
    expect:
      status: [200, 201, 3xx]
      body_matches: '"ok"'
      json:
        - { path: status, equals: ok }
        - { path: 'items[0].id', matches: '^[0-9]+$' }
        - { path: error, exists: false }
`,
        'listen: "[::1]:9100"\n',
      ),
    );
    const [check] = config.checks;
    expect(config.listen).toEqual({ host: '::1', port: 9100 });
    expect(check).toMatchObject({
      url: 'https://api.example.org/orders?dry_run=1',
      method: 'POST',
      headers: { 'X-Request-Source': 'probe', 'X-Count': '3' },
      body: '{"dry": true}',
      schedule: { kind: 'cron', expression: '*/5 * * * *', periodMs: 300_000 },
      timeoutMs: 2_500,
      scope: 'openid storage.read',
      audience: 'https://api.example.org',
    });
    expect(check!.expect.status.text).toBe('200,201,3xx');
    expect(check!.expect.status.has(302)).toBe(true);
    expect(check!.expect.json.map((a) => a.op)).toEqual(['equals', 'matches', 'exists']);
    expect(check!.expect.json[1]!.path).toEqual(['items', 0, 'id']);
  });

  it('applies defaults to checks that do not set their own', () => {
    const config = parseConfig(
      configWith(
        `${GOOD_CHECK}  - name: other
    url: https://api.example.org/other
    interval: 5m
    scope: profile
`,
        'defaults:\n  interval: 30s\n  timeout: 3s\n  scope: openid\n',
      ),
    );
    expect(config.checks.map((c) => [c.schedule, c.timeoutMs, c.scope])).toEqual([
      [{ kind: 'interval', intervalMs: 30_000 }, 3_000, 'openid'],
      [{ kind: 'interval', intervalMs: 300_000 }, 3_000, 'profile'],
    ]);
  });

  it('gives a cron schedule its longest gap as the period', () => {
    const config = parseConfig(
      configWith(`  - name: weekdays
    url: https://api.example.org/
    schedule: '0 9 * * 1-5'
`),
    );
    expect(config.checks[0]!.schedule).toMatchObject({ periodMs: 3 * 86_400_000 });
  });

  it('fingerprints checks so that equal definitions compare equal', () => {
    const a = parseConfig(configWith(GOOD_CHECK)).checks[0]!;
    const b = parseConfig(configWith(GOOD_CHECK)).checks[0]!;
    const c = parseConfig(configWith(`${GOOD_CHECK}    interval: 10s\n`)).checks[0]!;
    expect(a.fingerprint).toBe(b.fingerprint);
    expect(a.fingerprint).not.toBe(c.fingerprint);
  });

  const rejected: { name: string; text: string; path: string; message: string }[] = [
    { name: 'an empty file', text: '', path: '', message: 'the config is empty' },
    { name: 'a list at the top', text: '- a\n', path: '', message: 'the config must be a mapping' },
    {
      name: 'broken YAML',
      text: 'mytoken: [\n',
      path: '',
      message:
        'invalid YAML: flow sequence in block collection must be sufficiently indented and end with a ] at line 2, column 1',
    },
    {
      name: 'a duplicate key',
      text: `${HEAD}mytoken: {}\n`,
      path: '',
      message: 'invalid YAML: map keys must be unique at line 4, column 1',
    },
    {
      name: 'an unresolved alias',
      text: 'x: *nope\n',
      path: '',
      message: 'invalid YAML: unresolved alias (the anchor must be set before the alias): nope',
    },
    {
      name: 'an unknown top-level key',
      text: configWith(GOOD_CHECK, 'listne: 1\n'),
      path: 'listne',
      message: 'listne: unknown key (allowed: mytoken, listen, web, defaults, checks)',
    },
    {
      name: 'a missing mytoken block',
      text: `checks:\n${GOOD_CHECK}`,
      path: 'mytoken',
      message: 'mytoken: is required',
    },
    {
      name: 'a missing server',
      text: `mytoken:\n  token_file: x\nchecks:\n${GOOD_CHECK}`,
      path: 'mytoken.server',
      message: 'mytoken.server: is required',
    },
    {
      name: 'a plain-http server that is not loopback',
      text: configWith(GOOD_CHECK).replace('https://mytoken', 'http://mytoken'),
      path: 'mytoken.server',
      message:
        'mytoken.server: mytoken server "http://mytoken.example.org/" uses plain http: use https (http is only accepted for loopback hosts)',
    },
    {
      name: 'a token file that is a number',
      text: configWith(GOOD_CHECK).replace('/var/lib/probe/mytoken', '42'),
      path: 'mytoken.token_file',
      message: 'mytoken.token_file: must be a string',
    },
    {
      name: 'a bad listen address',
      text: configWith(GOOD_CHECK, 'listen: localhost\n'),
      path: 'listen',
      message: 'listen: "localhost" is not host:port (e.g. 127.0.0.1:9464, [::1]:9464)',
    },
    {
      name: 'no checks',
      text: `${HEAD}checks: []\n`,
      path: 'checks',
      message: 'checks: at least one check is needed',
    },
    {
      name: 'checks that are not a list',
      text: `${HEAD}checks: {a: 1}\n`,
      path: 'checks',
      message: 'checks: must be a list',
    },
    {
      name: 'a check without url',
      text: configWith('  - name: a\n'),
      path: 'checks[0].url',
      message: 'checks[0].url: is required',
    },
    {
      name: 'a bad name',
      text: configWith('  - name: "my check"\n    url: https://x.example/\n'),
      path: 'checks[0].name',
      message:
        'checks[0].name: "my check" is not a valid name (letters, digits, "_", ".", ":", "-"; at most 100)',
    },
    {
      name: 'duplicate names',
      text: configWith(`${GOOD_CHECK}${GOOD_CHECK}`),
      path: 'checks[1].name',
      message: 'checks[1].name: "api" is already used by checks[0]',
    },
    {
      name: 'an unknown check key',
      text: configWith(`${GOOD_CHECK}    expects: {}\n`),
      path: 'checks[0].expects',
      message:
        'checks[0].expects: unknown key (allowed: name, url, method, headers, body, interval, schedule, timeout, scope, audience, expect)',
    },
    {
      name: 'a URL that is not one',
      text: configWith('  - name: a\n    url: api/health\n'),
      path: 'checks[0].url',
      message: 'checks[0].url: "api/health" is not a URL',
    },
    {
      name: 'an ftp URL',
      text: configWith('  - name: a\n    url: ftp://x.example/\n'),
      path: 'checks[0].url',
      message: 'checks[0].url: "ftp:" URLs are not supported (use http or https)',
    },
    {
      name: 'credentials in the URL',
      text: configWith('  - name: a\n    url: https://u:p@x.example/\n'),
      path: 'checks[0].url',
      message: 'checks[0].url: must not carry credentials (the probe sends the access token)',
    },
    {
      name: 'an unknown method',
      text: configWith(`${GOOD_CHECK}    method: FETCH\n`),
      path: 'checks[0].method',
      message: 'checks[0].method: must be one of GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS',
    },
    {
      name: 'a body on GET',
      text: configWith(`${GOOD_CHECK}    body: x\n`),
      path: 'checks[0].body',
      message: 'checks[0].body: a GET request cannot carry a body',
    },
    {
      name: 'an Authorization header',
      text: configWith(`${GOOD_CHECK}    headers: {Authorization: Bearer x}\n`),
      path: 'checks[0].headers.Authorization',
      message: 'checks[0].headers.Authorization: is set by the probe and cannot be configured',
    },
    {
      name: 'a duration without unit',
      text: configWith(`${GOOD_CHECK}    interval: 30\n`),
      path: 'checks[0].interval',
      message: 'checks[0].interval: must be a string',
    },
    {
      name: 'a malformed duration',
      text: configWith(`${GOOD_CHECK}    interval: 30 seconds\n`),
      path: 'checks[0].interval',
      message:
        'checks[0].interval: "30 seconds" is not a duration (use a unit: 500ms, 30s, 5m, 1h)',
    },
    {
      name: 'a too short interval',
      text: configWith(`${GOOD_CHECK}    interval: 10ms\n`),
      path: 'checks[0].interval',
      message: 'checks[0].interval: 10ms is shorter than the minimum 100ms',
    },
    {
      name: 'both interval and schedule',
      text: configWith(`${GOOD_CHECK}    interval: 1m\n    schedule: '* * * * *'\n`),
      path: 'checks[0].schedule',
      message: 'checks[0].schedule: give either "interval" or "schedule", not both',
    },
    {
      name: 'a bad cron expression',
      text: configWith(`${GOOD_CHECK}    schedule: '61 * * * *'\n`),
      path: 'checks[0].schedule',
      message:
        'checks[0].schedule: "61 * * * *" is not a cron expression (minute: 61 is a invalid expression for minute)',
    },
    {
      name: 'a timeout longer than the interval',
      text: configWith(`${GOOD_CHECK}    interval: 5s\n    timeout: 10s\n`),
      path: 'checks[0].timeout',
      message: "checks[0].timeout: 10s is longer than the check's period",
    },
    {
      name: 'a bad status code',
      text: configWith(`${GOOD_CHECK}    expect:\n      status: [200, 700]\n`),
      path: 'checks[0].expect.status[1]',
      message:
        'checks[0].expect.status[1]: must be a status code (100-599) or a class such as "2xx"',
    },
    {
      name: 'a status that is not a list',
      text: configWith(`${GOOD_CHECK}    expect:\n      status: 200\n`),
      path: 'checks[0].expect.status',
      message: 'checks[0].expect.status: must be a list',
    },
    {
      name: 'a bad regular expression',
      text: configWith(`${GOOD_CHECK}    expect:\n      body_matches: '(unclosed'\n`),
      path: 'checks[0].expect.body_matches',
      message: 'checks[0].expect.body_matches: "(unclosed" is not a valid regular expression',
    },
    {
      name: 'a JSON assertion with two operators',
      text: configWith(
        `${GOOD_CHECK}    expect:\n      json: [{path: a, equals: 1, exists: true}]\n`,
      ),
      path: 'checks[0].expect.json[0]',
      message: 'checks[0].expect.json[0]: give exactly one of "equals", "matches" or "exists"',
    },
    {
      name: 'a JSON assertion with a bad path',
      text: configWith(`${GOOD_CHECK}    expect:\n      json: [{path: 'a..b', exists: true}]\n`),
      path: 'checks[0].expect.json[0].path',
      message: 'checks[0].expect.json[0].path: "a..b" is not a valid path (use a.b[0].c)',
    },
    {
      name: 'an unknown expect key',
      text: configWith(`${GOOD_CHECK}    expect:\n      code: 200\n`),
      path: 'checks[0].expect.code',
      message: 'checks[0].expect.code: unknown key (allowed: status, body_matches, json)',
    },
  ];

  it.each(rejected)('rejects $name, naming the key path', ({ text, path, message }) => {
    expect(problem(text)).toEqual({ path, message });
  });
});

describe('parseDuration', () => {
  it.each([
    ['500ms', 500],
    ['30s', 30_000],
    ['5m', 300_000],
    ['1h30m', 5_400_000],
    ['1d', 86_400_000],
  ])('reads %s', (text, ms) => {
    expect(parseDuration(text)).toBe(ms);
  });

  it.each(['', '30', '1.5s', '-1s', 's', '1 s'])('refuses "%s"', (text) => {
    expect(parseDuration(text)).toBeUndefined();
  });
});

describe('parseJsonPath', () => {
  it.each([
    ['', []],
    ['$', []],
    ['status', ['status']],
    ['$.data.items[2].id', ['data', 'items', 2, 'id']],
    ['a["b.c"].d', ['a', 'b.c', 'd']],
  ])('reads "%s"', (text, path) => {
    expect(parseJsonPath(text)).toEqual(path);
  });
});
