/**
 * The long-job mode: a sub-token for the rest of the job, the `mytoken-access-token` command a later step calls,
 * and the post step that revokes the sub-token.
 */
import { readFile, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { CAPABILITY_HINT } from '../../src/action/messages.ts';
import {
  DIST,
  NODE,
  errorLine,
  expectNoLeaks,
  runLaterStep,
  runPost,
  type ActionRun,
} from './harness.ts';
import { startFixture, type Fixture } from './fixture.ts';

let f: Fixture;

beforeAll(async () => {
  f = await startFixture();
});

afterAll(async () => {
  await f?.close();
});

const LONG_JOB = {
  capabilities: ['AT', 'create_mytoken'],
  rotation: ['on_AT', 'on_other'] as const,
};

async function longJobRun(): Promise<{ run: ActionRun; token: string }> {
  const token = await f.seed('MYTOKEN', undefined, {
    ...LONG_JOB,
    rotation: [...LONG_JOB.rotation],
  });
  const run = await f.run(token, { inputs: { 'sub-token-lifetime': '2h' } });
  expect(run.code, errorLine(run)).toBe(0);
  return { run, token };
}

async function helperSubtoken(run: ActionRun): Promise<string> {
  const config = join(run.state.helper_dir as string, 'helper.json');
  return (JSON.parse(await readFile(config, 'utf8')) as { subtoken: string }).subtoken;
}

/** The status of an access-token request made with `token` (the sub-token may do nothing else). */
async function exchangeStatus(token: string): Promise<number> {
  const res = await fetch(`${f.dev.urls.mytoken_server}/api/v0/token/access`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify({ grant_type: 'mytoken' }),
  });
  await res.body?.cancel();
  return res.status;
}

/** The access tokens a step got from the command, checked against the demo resource. */
async function resourceStatus(at: string): Promise<number> {
  const res = await fetch(`${f.dev.urls.resource}/health`, {
    headers: { authorization: `Bearer ${at}` },
  });
  await res.body?.cancel();
  return res.status;
}

describe('the long-job mode', () => {
  test('puts a command on PATH that prints a fresh access token', async () => {
    const { run } = await longJobRun();
    const first = await runLaterStep(run, 'mytoken-access-token');
    const second = await runLaterStep(run, 'mytoken-access-token');

    expect(first.code, first.stderr).toBe(0);
    const at1 = first.stdout.trim();
    const at2 = second.stdout.trim();
    expect(at1).not.toBe(at2);
    expect(await resourceStatus(at1)).toBe(200);
    expect(await resourceStatus(at2)).toBe(200);
    expect(first.stdout).toBe(`${at1}\n`);
    expect(first.stderr).toBe(`::add-mask::${at1}\n`);
  });

  test('keeps the sub-token masked and in a file only its owner may read', async () => {
    const { run, token } = await longJobRun();
    const dir = run.state.helper_dir as string;
    const config = join(dir, 'helper.json');

    expect((await stat(dir)).mode & 0o777).toBe(0o700);
    expect((await stat(config)).mode & 0o777).toBe(0o600);
    const masks = run.stdout.split('\n').filter((l) => l.startsWith('::add-mask::'));
    const subtoken = await helperSubtoken(run);
    expect(masks).toContain(`::add-mask::${subtoken}`);
    expectNoLeaks(run, [token, subtoken, f.stored() as string], { outputs: ['access-token'] });
    expect(run.summary).toMatch(/\| Sub-token for this job expires \| \d{4}-/);
  });

  test('writes back the mytoken rotated by both the access token and the sub-token request', async () => {
    const { run, token } = await longJobRun();

    expect(f.stored()).not.toBe(token);
    expect(run.outputs.rotated).toBe('true');
    const puts = f.github.requests.filter((r) => r.method === 'PUT' && r.status === 204);
    expect(puts.length).toBeGreaterThanOrEqual(2);
  });

  test('the post step revokes the sub-token and removes its files', async () => {
    const { run } = await longJobRun();
    const dir = run.state.helper_dir as string;
    const subtoken = await helperSubtoken(run);
    expect(await exchangeStatus(subtoken)).toBe(200);
    const post = await runPost(run);

    expect(post.code, post.stdout).toBe(0);
    expect(post.stdout).toContain('Revoked the sub-token of this job');
    expect(await exchangeStatus(subtoken)).toBe(401);
    await expect(readdir(dir)).rejects.toThrow(/ENOENT/);
    expectNoLeaks(post, [subtoken]);
  });

  test('the command fails with one line when its configuration is gone', async () => {
    const run = await runLaterStep(
      { env: { PATH: process.env.PATH ?? '' }, path: [] } as unknown as ActionRun,
      NODE,
      [DIST, 'access-token', '/nonexistent/helper.json'],
    );

    expect(run.code).toBe(1);
    expect(run.stdout).toBe('');
    expect(run.stderr).toBe(
      "mytoken-access-token: cannot read /nonexistent/helper.json: the sub-token of this job is gone (the job's post step has run?)\n",
    );
  });

  test('the post step of a run without the long-job mode does nothing', async () => {
    const run = await f.run(await f.seed());
    const post = await runPost(run);

    expect(post.code).toBe(0);
    expect(post.stdout).toBe('');
  });

  test('needs the create_mytoken capability', async () => {
    const token = await f.seed();
    const run = await f.run(token, { inputs: { 'sub-token-lifetime': '1h' } });

    expect(run.code).toBe(1);
    expect(errorLine(run)).toBe(
      `the mytoken lacks the "create_mytoken" capability. ${CAPABILITY_HINT}`,
    );
    expect(f.stored()).toBe(token);
  });
});
