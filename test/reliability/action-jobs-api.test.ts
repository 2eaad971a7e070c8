/**
 * When did this job start, according to the jobs API? The GitHub fake's jobs route (`GET
 * /repos/{o}/{r}/actions/runs/{id}/attempts/{n}/jobs`) on its own, then the Action's stale-secret check taking the
 * job's `started_at` from it end to end, ahead of the event file, and falling back to the event file when the
 * route refuses or cannot tell the job apart.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { concurrencyHint } from '../../src/action/messages.ts';
import { GITHUB_TOKENS, errorLine } from '../action/harness.ts';
import { REPO_SCOPE, startFixture, type Fixture } from '../action/fixture.ts';
import { expectActionFailure, expectNoLeaks, runCanaries } from './helpers.ts';

let f: Fixture;

beforeAll(async () => {
  f = await startFixture({
    tokens: {
      [GITHUB_TOKENS.writer]: 'write',
      [GITHUB_TOKENS.reader]: 'read',
      [GITHUB_TOKENS.none]: 'none',
      [GITHUB_TOKENS.job]: 'none',
    },
  });
});

afterAll(async () => {
  await f?.close();
});

/** The harness runs every job as run 4242, attempt 1; each test names its own runner. */
let nextRun = 5000;

async function jobs(runId: number, query = '', token: string = GITHUB_TOKENS.job) {
  const res = await fetch(
    `${f.github.url}/repos/acme/app/actions/runs/${runId}/attempts/1/jobs${query}`,
    {
      headers: { authorization: `Bearer ${token}` },
    },
  );
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

const ago = (seconds: number) => new Date(Date.now() - seconds * 1000);

describe('the GitHub fake: jobs of a run attempt', () => {
  test('lists the jobs with the fields GitHub uses and second-precision times', async () => {
    const runId = nextRun++;
    f.github.addJob('acme/app', {
      runId,
      runnerName: 'runner-a',
      startedAt: '2026-01-01T10:00:00.750Z',
    });
    f.github.addJob('acme/app', {
      runId,
      runnerName: 'runner-b',
      status: 'completed',
      startedAt: ago(60),
    });
    const { status, body } = await jobs(runId);

    expect(status).toBe(200);
    expect(body.total_count).toBe(2);
    expect(body.jobs).toMatchObject([
      {
        run_id: runId,
        run_attempt: 1,
        status: 'in_progress',
        conclusion: null,
        started_at: '2026-01-01T10:00:00Z',
        runner_name: 'runner-a',
      },
      { status: 'completed', conclusion: 'success', runner_name: 'runner-b' },
    ]);
  });

  test('pages with per_page and page', async () => {
    const runId = nextRun++;
    for (let i = 0; i < 5; i++) {
      f.github.addJob('acme/app', { runId, runnerName: `r${i}`, startedAt: ago(10) });
    }
    const { body } = await jobs(runId, '?per_page=2&page=3');

    expect(body.total_count).toBe(5);
    expect((body.jobs as { runner_name: string }[]).map((j) => j.runner_name)).toEqual(['r4']);
  });

  test('answers 404 for a run it does not know and 401 for an unknown token', async () => {
    expect((await jobs(nextRun++)).status).toBe(404);
    const runId = nextRun++;
    f.github.addJob('acme/app', { runId, runnerName: 'r', startedAt: ago(1) });
    expect((await jobs(runId, '', 'ghp_unknown')).status).toBe(401);
  });

  test('needs no secrets permission, as a job token may list jobs', async () => {
    const runId = nextRun++;
    f.github.addJob('acme/app', { runId, runnerName: 'r', startedAt: ago(1) });
    expect((await jobs(runId, '', GITHUB_TOKENS.none)).status).toBe(200);
  });
});

describe('the stale-secret check with the jobs API', () => {
  /** Seeds a secret updated `updated` seconds ago and a job of run 4242 that started `started` seconds ago. */
  async function scene(name: string, updated: number, started: number, runner: string) {
    const token = await f.mint();
    f.github.setSecret(REPO_SCOPE, name, token, { updatedAt: ago(updated) });
    f.github.addJob('acme/app', { runId: 4242, runnerName: runner, startedAt: ago(started) });
    return token;
  }

  test('refuses a secret updated after the job started, though the event file says otherwise', async () => {
    const token = await scene('JOBS_STALE', 5, 30, 'runner-stale');
    const run = await f.run(token, {
      inputs: { 'secret-name': 'JOBS_STALE' },
      env: { RUNNER_NAME: 'runner-stale' },
      jobStartedAt: new Date(),
    });

    expectActionFailure(
      run,
      new RegExp(
        `^repository secret JOBS_STALE was updated at \\S+, after this job started \\(\\S+, from the jobs API\\), so the mytoken in hand is superseded and was not used\\. ${escape(concurrencyHint('JOBS_STALE'))}$`,
      ),
    );
    expect(f.stored('JOBS_STALE')).toBe(token);
    await expectNoLeaks(run, runCanaries(run, { 'input mytoken': token }));
  });

  test('accepts a secret updated before the job started, though the event file is older', async () => {
    const token = await scene('JOBS_FRESH', 20, 10, 'runner-fresh');
    const run = await f.run(token, {
      inputs: { 'secret-name': 'JOBS_FRESH' },
      env: { RUNNER_NAME: 'runner-fresh' },
      jobStartedAt: ago(30),
    });

    expect(run.code, errorLine(run)).toBe(0);
    expect(f.stored('JOBS_FRESH')).not.toBe(token);
  });

  test('falls back to the event file when the jobs API refuses', async () => {
    const token = await scene('JOBS_REFUSED', 5, 30, 'runner-refused');
    f.github.inject({
      method: 'GET',
      path: '/repos/acme/app/actions/runs/4242/attempts/1/jobs',
      fault: { kind: 'forbidden' },
      times: 2,
    });
    const run = await f.run(token, {
      inputs: { 'secret-name': 'JOBS_REFUSED' },
      env: { RUNNER_NAME: 'runner-refused' },
      jobStartedAt: new Date(),
    });

    expect(run.code, errorLine(run)).toBe(0);
    expect(f.github.pendingFaults()).toBe(0);
  });

  test('falls back to the event file when two running jobs share the runner name', async () => {
    const token = await scene('JOBS_TWINS', 5, 30, 'runner-twin');
    f.github.addJob('acme/app', { runId: 4242, runnerName: 'runner-twin', startedAt: ago(40) });
    const run = await f.run(token, {
      inputs: { 'secret-name': 'JOBS_TWINS' },
      env: { RUNNER_NAME: 'runner-twin' },
      jobStartedAt: ago(30),
    });

    expectActionFailure(run, /after this job started \(\S+, from the event file\)/);
  });
});

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
