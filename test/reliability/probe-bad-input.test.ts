/**
 * Bad input for the probe (issue #5), completing the corpus of `test/probe/config.test.ts`: each
 * bad config is rejected with a `ConfigError` naming the key path; a sample goes through the real
 * bin (one line on stderr naming the key path, exit 2, no stack trace), in `--check-config` and in
 * service mode. Token files: created 0600 whatever the umask, never followed through a symbolic
 * link, refused when others can read them, missing, empty or not a token; all through the bin.
 */
import { spawn } from 'node:child_process';
import { chmod, mkdir, readdir, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { ConfigError } from '../../probe/errors.ts';
import { parseConfig } from '../../probe/config.ts';
import { BIN, NODE, runBin, scrape, waitFor, type CommandResult } from '../probe/helpers.ts';
import { Canaries, assertNoCanaries } from '../support/canary.ts';
import { probeBed } from './probe-support.ts';

const HEAD =
  'mytoken:\n  server: https://mytoken.example.org\n  token_file: /var/lib/probe/mytoken\n';
const CHECK = '  - name: api\n    url: https://api.example.org/health\n';
const withChecks = (checks: string, extra = '') => `${HEAD}${extra}checks:\n${checks}`;
const withKeys = (keys: string) => withChecks(`${CHECK}${keys}`);

/** [what, config text, key path named]. */
const CORPUS: [string, string, string][] = [
  [
    'a missing token file',
    `mytoken:\n  server: https://m.example\nchecks:\n${CHECK}`,
    'mytoken.token_file',
  ],
  [
    'a server that is no URL',
    HEAD.replace('https://mytoken.example.org', 'mytoken') + `checks:\n${CHECK}`,
    'mytoken.server',
  ],
  ['an ftp server', HEAD.replace('https:', 'ftp:') + `checks:\n${CHECK}`, 'mytoken.server'],
  [
    'a server that is a number',
    HEAD.replace('https://mytoken.example.org', '8080') + `checks:\n${CHECK}`,
    'mytoken.server',
  ],
  ['a mytoken block that is a string', `mytoken: https://m.example\nchecks:\n${CHECK}`, 'mytoken'],
  [
    'an unknown mytoken key',
    withChecks(CHECK).replace('  token_file', '  tokenfile: x\n  token_file'),
    'mytoken.tokenfile',
  ],
  [
    'a mytoken timeout without unit',
    withChecks(CHECK).replace('/mytoken\n', '/mytoken\n  timeout: 5\n'),
    'mytoken.timeout',
  ],
  ['a port above 65535', withChecks(CHECK, 'listen: 127.0.0.1:70000\n'), 'listen'],
  ['a listen address that is a number', withChecks(CHECK, 'listen: 9464\n'), 'listen'],
  ['an unknown web key', withChecks(CHECK, 'web:\n  config: x\n'), 'web.config'],
  [
    'a web config file that is a list',
    withChecks(CHECK, 'web:\n  config_file: [a]\n'),
    'web.config_file',
  ],
  [
    'an unknown defaults key',
    withChecks(CHECK, 'defaults:\n  intervall: 1m\n'),
    'defaults.intervall',
  ],
  [
    'a default interval without unit',
    withChecks(CHECK, 'defaults:\n  interval: 60\n'),
    'defaults.interval',
  ],
  [
    'a default scope that is a number',
    withChecks(CHECK, 'defaults:\n  scope: 7\n'),
    'defaults.scope',
  ],
  ['a check that is a string', withChecks('  - https://api.example.org/\n'), 'checks[0]'],
  ['a check without name', withChecks('  - url: https://api.example.org/\n'), 'checks[0].name'],
  [
    'a name that is a number',
    withChecks('  - name: 7\n    url: https://a.example/\n'),
    'checks[0].name',
  ],
  ['an empty URL', withChecks('  - name: a\n    url: ""\n'), 'checks[0].url'],
  [
    'a URL that is a list',
    withChecks('  - name: a\n    url: [https://a.example/]\n'),
    'checks[0].url',
  ],
  [
    'a javascript URL',
    withChecks('  - name: a\n    url: "javascript:alert(1)"\n'),
    'checks[0].url',
  ],
  ['a method that is a number', withKeys('    method: 1\n'), 'checks[0].method'],
  ['headers that are a list', withKeys('    headers: [a]\n'), 'checks[0].headers'],
  [
    'a header with a line break',
    withKeys('    headers: {X-A: "a\\r\\nX-B: b"}\n'),
    'checks[0].headers.X-A',
  ],
  ['a header name with a space', withKeys('    headers: {"X A": b}\n'), 'checks[0].headers.X A'],
  ['a Host header', withKeys('    headers: {host: evil.example}\n'), 'checks[0].headers.host'],
  ['a body on HEAD', withKeys('    method: HEAD\n    body: x\n'), 'checks[0].body'],
  ['a timeout below the minimum', withKeys('    timeout: 1ms\n'), 'checks[0].timeout'],
  ['a negative timeout', withKeys('    timeout: -5s\n'), 'checks[0].timeout'],
  ['a cron expression in words', withKeys("    schedule: 'every minute'\n"), 'checks[0].schedule'],
  [
    'a cron expression with seven fields',
    withKeys("    schedule: '* * * * * * *'\n"),
    'checks[0].schedule',
  ],
  ['a cron day 32', withKeys("    schedule: '0 0 32 * *'\n"), 'checks[0].schedule'],
  ['a cron expression that is a number', withKeys('    schedule: 5\n'), 'checks[0].schedule'],
  [
    'a status class 6xx',
    withKeys('    expect:\n      status: [6xx]\n'),
    'checks[0].expect.status[0]',
  ],
  [
    'a status given as text',
    withKeys('    expect:\n      status: ["200"]\n'),
    'checks[0].expect.status[0]',
  ],
  [
    'a regex that is a number',
    withKeys('    expect:\n      body_matches: 5\n'),
    'checks[0].expect.body_matches',
  ],
  [
    'a regex with a bad escape',
    withKeys("    expect:\n      body_matches: '\\p{Nope}'\n"),
    'checks[0].expect.body_matches',
  ],
  [
    'a regex with a bad quantifier',
    withKeys("    expect:\n      body_matches: '*ok'\n"),
    'checks[0].expect.body_matches',
  ],
  [
    'JSON assertions that are a mapping',
    withKeys('    expect:\n      json: {path: a}\n'),
    'checks[0].expect.json',
  ],
  [
    'a JSON assertion without path',
    withKeys('    expect:\n      json: [{exists: true}]\n'),
    'checks[0].expect.json[0].path',
  ],
  [
    'a JSON assertion with a bad regex',
    withKeys("    expect:\n      json: [{path: a, matches: '['}]\n"),
    'checks[0].expect.json[0].matches',
  ],
  [
    'a JSON exists that is text',
    withKeys('    expect:\n      json: [{path: a, exists: "yes"}]\n'),
    'checks[0].expect.json[0].exists',
  ],
  ['an audience that is a mapping', withKeys('    audience: {a: 1}\n'), 'checks[0].audience'],
  [
    'a duplicate name further down',
    withChecks(`${CHECK}  - name: b\n    url: https://b.example/\n${CHECK}`),
    'checks[2].name',
  ],
  [
    'an alias bomb',
    `a: &a [x,x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]\n`,
    '',
  ],
  ['a tab-indented block', `${HEAD}checks:\n\t- name: a\n`, ''],
];

describe('a bad probe config', () => {
  test.each(CORPUS)('is rejected when it has %s, naming the key path', (_what, text, path) => {
    let caught: unknown;
    try {
      parseConfig(text, '/etc/probe/probe.yml');
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(ConfigError);
    const error = caught as ConfigError;
    expect(error.path).toBe(path);
    expect(error.message.startsWith(path === '' ? 'invalid YAML' : `${path}: `)).toBe(true);
    expect(error.message).not.toContain('\n');
  });
});

function expectUserError(run: CommandResult, path: string): void {
  expect(run.code).toBe(2);
  const lines = run.stderr.trim().split('\n');
  expect(lines).toHaveLength(1);
  expect(lines[0]).toContain(path);
  expect(run.stderr).not.toMatch(/^\s+at .+:\d+:\d+\)?$/m);
}

describe('the bin with a bad config', () => {
  const sample = CORPUS.filter((_, i) => i % 6 === 0);

  test('reports each of a sample in one line naming the key path, exit 2, in both modes', async () => {
    const bed = await probeBed();
    try {
      const results = await Promise.all(
        sample.map(async ([, text, path], i) => {
          const file = join(bed.dir, `bad-${i}.yml`);
          await writeFile(file, text);
          return {
            path,
            check: await runBin(['--config', file, '--check-config']),
            serve: await runBin(['--config', file]),
          };
        }),
      );
      for (const { path, check, serve } of results) {
        expectUserError(check, path);
        expectUserError(serve, path);
        expect(JSON.parse(serve.stderr)).toMatchObject({
          level: 'error',
          msg: 'Probe did not start',
        });
      }
    } finally {
      await bed.close();
    }
  }, 60_000);
});

describe('token files through the probe', () => {
  test('refuses a missing, empty, garbage, group-readable, symlinked or directory token file, in one line', async () => {
    const bed = await probeBed();
    try {
      await bed.writeConfig();
      const real = join(bed.dir, 'real');
      await writeFile(real, `${bed.minted}\n`, { mode: 0o600 });
      const cases: [string, () => Promise<unknown>, string][] = [
        ['missing', () => rm(bed.tokenFile), 'ENOENT'],
        ['empty', () => writeFile(bed.tokenFile, ''), 'holds no token'],
        ['garbage', () => writeFile(bed.tokenFile, 'not a token\u0000\n'), 'holds no token'],
        ['group-readable', () => chmod(bed.tokenFile, 0o640), 'readable by others'],
        [
          'a symbolic link',
          () => rm(bed.tokenFile).then(() => symlink(real, bed.tokenFile)),
          'ELOOP',
        ],
        [
          'a directory',
          () => rm(bed.tokenFile).then(() => mkdir(bed.tokenFile)),
          'not a regular file',
        ],
      ];
      for (const [, prepare, expected] of cases) {
        await rm(bed.tokenFile, { recursive: true, force: true });
        await writeFile(bed.tokenFile, `${bed.minted}\n`, { mode: 0o600 });
        await prepare();
        const run = await runBin(['--config', bed.configFile]);
        expect(run.code).toBe(2);
        expect(run.stderr.trim().split('\n')).toHaveLength(1);
        expect(run.stderr).toContain(expected);
        expect(run.stderr).toContain(bed.tokenFile);
        assertNoCanaries(new Canaries().add('minted mytoken', bed.minted), {
          stderr: run.stderr,
          stdout: run.stdout,
        });
      }
      // Nothing was written through the link.
      expect((await stat(real)).mode & 0o777).toBe(0o600);
    } finally {
      await bed.close();
    }
  }, 60_000);

  test('writes every rotated token 0600 even under umask 000', async () => {
    const bed = await probeBed();
    try {
      await bed.writeConfig();
      await chmod(bed.tokenFile, 0o600);
      const child = spawn(
        '/bin/sh',
        ['-c', `umask 000; exec "${NODE}" "${BIN}" --config "${bed.configFile}"`],
        {
          stdio: ['ignore', 'ignore', 'pipe'],
        },
      );
      let stderr = '';
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      const started = await waitFor(() => /"address":"([^"]+)"/.exec(stderr)?.[1], 20_000, 'start');
      await waitFor(
        async () =>
          (await scrape(`http://${started}`)).get('mytoken_probe_check_success{check="c"}') === 1,
      );
      child.kill('SIGTERM');
      await new Promise((resolve) => child.once('close', resolve));
      expect(await bed.readToken()).not.toBe(bed.minted);
      expect((await stat(bed.tokenFile)).mode & 0o777).toBe(0o600);
      expect((await readdir(bed.dir)).filter((n) => n.endsWith('.tmp'))).toEqual([]);
      assertNoCanaries(bed.canaries, { stderr });
    } finally {
      await bed.close();
    }
  }, 30_000);
});
