/**
 * When did this job receive its secrets? The runner gets the job's secrets in the job message and starts the job
 * right away, so the job's start time bounds the moment the `mytoken` input was read. A secret written after that
 * moment was written by someone else (a concurrent run), and the value in hand is already superseded.
 *
 * Sources, best first: the `started_at` of this job from the jobs API (matched by RUNNER_NAME, needs a token that
 * may read Actions), then the modification time of GITHUB_EVENT_PATH, which the runner writes as the job starts.
 */
import { stat } from 'node:fs/promises';
import type { ActionEnv } from './core.ts';
import type { GitHubApi } from './github.ts';

export interface JobStart {
  at: Date;
  source: 'jobs API' | 'event file';
}

const MAX_JOB_PAGES = 5;

export async function findJobStart(
  apis: readonly GitHubApi[],
  env: ActionEnv,
  debug: (message: string) => void,
): Promise<JobStart | undefined> {
  for (const api of apis) {
    try {
      const at = await startedAtFromJobsApi(api, env);
      if (at !== undefined) return { at, source: 'jobs API' };
    } catch (error) {
      debug(`Jobs API not usable for the job start: ${(error as Error).message}`);
    }
  }
  return startedAtFromEventFile(env, debug);
}

/**
 * True when the secret was updated after the job started. Both times are compared at second precision, as GitHub
 * reports them; an update within the same second as the job start is therefore not detected.
 */
export function isStale(updatedAt: Date, jobStart: Date): boolean {
  return Math.floor(updatedAt.getTime() / 1000) > Math.floor(jobStart.getTime() / 1000);
}

async function startedAtFromJobsApi(api: GitHubApi, env: ActionEnv): Promise<Date | undefined> {
  const { GITHUB_REPOSITORY: repo, GITHUB_RUN_ID: runId, RUNNER_NAME: runner } = env;
  if (repo === undefined || runId === undefined || runner === undefined) return undefined;
  const e = encodeURIComponent;
  const [owner = '', name = ''] = repo.split('/');
  const attempt = env.GITHUB_RUN_ATTEMPT ?? '1';
  const base = `/repos/${e(owner)}/${e(name)}/actions/runs/${e(runId)}/attempts/${e(attempt)}/jobs`;
  const matches: Date[] = [];
  for (let page = 1; page <= MAX_JOB_PAGES; page++) {
    const res = await api.get(`${base}?per_page=100&page=${page}`, 'list the jobs of this run');
    const jobs = Array.isArray(res.body.jobs) ? (res.body.jobs as Record<string, unknown>[]) : [];
    for (const job of jobs) {
      if (job.runner_name !== runner || job.status !== 'in_progress') continue;
      const at = new Date(String(job.started_at));
      if (!Number.isNaN(at.getTime())) matches.push(at);
    }
    if (jobs.length < 100) break;
  }
  // Two in-progress jobs on one runner name cannot be told apart; the event file decides then.
  return matches.length === 1 ? matches[0] : undefined;
}

async function startedAtFromEventFile(
  env: ActionEnv,
  debug: (message: string) => void,
): Promise<JobStart | undefined> {
  const path = env.GITHUB_EVENT_PATH;
  if (path === undefined || path === '') return undefined;
  try {
    return { at: (await stat(path)).mtime, source: 'event file' };
  } catch (error) {
    debug(`Event file not readable for the job start: ${(error as Error).message}`);
    return undefined;
  }
}
