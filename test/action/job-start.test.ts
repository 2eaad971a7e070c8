/**
 * When did this job start? The sources checked here through the GitHub client with a transport that answers
 * in-process; both run end to end against the GitHub fake's jobs route in `test/reliability/action-jobs-api.test.ts`.
 */
import { mkdtemp, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import type { HttpRequest, Transport } from '../../src/client/http.ts';
import { GitHubApi } from '../../src/action/github.ts';
import { findJobStart, isStale } from '../../src/action/job-start.ts';

const ENV = {
  GITHUB_REPOSITORY: 'acme/app',
  GITHUB_RUN_ID: '99',
  GITHUB_RUN_ATTEMPT: '2',
  RUNNER_NAME: 'runner-b',
};

function apiAnswering(status: number, body: unknown, seen: string[] = []): GitHubApi {
  const transport: Transport = {
    send: async (req: HttpRequest) => {
      seen.push(req.url);
      return { status, headers: {}, text: JSON.stringify(body) };
    },
    close: async () => undefined,
  };
  return new GitHubApi({ apiUrl: 'https://api.github.com', token: 't', transport, attempts: 1 });
}

const job = (runner: string, status: string, started: string) => ({
  runner_name: runner,
  status,
  started_at: started,
});

describe('findJobStart', () => {
  test('takes started_at of the in-progress job on this runner', async () => {
    const seen: string[] = [];
    const api = apiAnswering(
      200,
      {
        jobs: [
          job('runner-a', 'in_progress', '2026-01-01T10:00:00Z'),
          job('runner-b', 'completed', '2026-01-01T09:00:00Z'),
          job('runner-b', 'in_progress', '2026-01-01T10:05:00Z'),
        ],
      },
      seen,
    );
    const start = await findJobStart([api], ENV, () => undefined);

    expect(start).toEqual({ at: new Date('2026-01-01T10:05:00Z'), source: 'jobs API' });
    expect(seen).toEqual([
      'https://api.github.com/repos/acme/app/actions/runs/99/attempts/2/jobs?per_page=100&page=1',
    ]);
  });

  test('falls back to the event file when the jobs API refuses', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'job-start-'));
    const event = join(dir, 'event.json');
    await writeFile(event, '{}');
    const at = new Date('2026-01-01T10:00:00.250Z');
    await utimes(event, at, at);
    const debug: string[] = [];
    const start = await findJobStart(
      [apiAnswering(403, { message: 'Resource not accessible by integration' })],
      { ...ENV, GITHUB_EVENT_PATH: event },
      (m) => debug.push(m),
    );

    expect(start).toEqual({ at, source: 'event file' });
    expect(debug[0]).toMatch(/^Jobs API not usable for the job start: .*403/);
  });

  test('does not guess between two in-progress jobs on one runner name', async () => {
    const api = apiAnswering(200, {
      jobs: [
        job('runner-b', 'in_progress', '2026-01-01T10:00:00Z'),
        job('runner-b', 'in_progress', '2026-01-01T10:01:00Z'),
      ],
    });

    expect(await findJobStart([api], ENV, () => undefined)).toBeUndefined();
  });
});

describe('isStale', () => {
  const start = new Date('2026-01-01T10:00:00.700Z');

  test.each([
    ['a second after the start', '2026-01-01T10:00:01Z', true],
    ['in the same second', '2026-01-01T10:00:00Z', false],
    ['before the start', '2026-01-01T09:59:59Z', false],
  ])('an update %s counts as stale: %s', (_name, updated, stale) => {
    expect(isStale(new Date(updated), start)).toBe(stale);
  });
});
