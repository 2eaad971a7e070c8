/**
 * Two runs of the bundled Action racing for one rotating mytoken (issue #5). Both jobs received the same secret
 * value; each job started `setupMs` before its Action step (the steps before it), and the second one `apartMs`
 * after the first. Used by `action-race.test.ts` (a few pairs, invariants) and `bench/action-race.ts` (50 pairs
 * per setting, the table).
 */
import { REPO_SCOPE, type Fixture } from '../action/fixture.ts';
import { GITHUB_TOKENS, errorLine, type ActionRun } from '../action/harness.ts';
import { Canaries, findCanaries, readTree, withoutMaskLines } from '../support/canary.ts';
import { isValid, sleep } from './helpers.ts';

export interface PairOptions {
  secret: string;
  autoRevoke: boolean;
  /**
   * Milliseconds between the two Action steps (and job starts); `after-write` starts the second step once the
   * first has written the secret back, its job having started 200 ms after the first one's.
   */
  apartMs: number | 'after-write';
  /** How long before its Action step each job started. */
  setupMs: number;
}

/** How the run that did not win ended. */
export type LoserOutcome =
  /** Stopped by the stale-secret check, before presenting the token. */
  | 'stopped'
  /** Presented the superseded token; the server refused it (with auto_revoke: and revoked the chain). */
  | 'refused'
  /** Lost inside the server to the concurrent winner (the server's 500 for the second of two uses). */
  | 'lost-in-server'
  /** Anything else: a bug. */
  | 'other';

export interface PairResult {
  runs: [ActionRun, ActionRun];
  /** Runs that exited 0. */
  winners: number;
  loser: LoserOutcome | undefined;
  loserLine: string | undefined;
  /** Access-token requests the pair sent. */
  exchanges: number;
  /** The secret left behind differs from the value both runs started with. */
  rotated: boolean;
  /** The secret left behind is accepted by the server. */
  valid: boolean;
  /** Surfaces where a token appeared (`run N: surface`); empty when none did. */
  leaks: string[];
}

const FAST = { MYTOKEN_ACTION_RETRY_BASE_MS: '5' };

/** Runs one pair and classifies what happened. */
export async function racePair(f: Fixture, options: PairOptions): Promise<PairResult> {
  const { secret } = options;
  const token = await f.seed(secret, REPO_SCOPE, { autoRevoke: options.autoRevoke });
  const exchangesBefore = exchangeCount(f);
  const start = Date.now();
  const runWith = (jobStartedAt: number) =>
    f.run(token, {
      inputs: { 'secret-name': secret },
      jobStartedAt: new Date(jobStartedAt),
      env: FAST,
    });

  const first = runWith(start - options.setupMs);
  let second: Promise<ActionRun>;
  if (options.apartMs === 'after-write') {
    await waitForWrite(f, secret, token);
    second = runWith(start - options.setupMs + 200);
  } else {
    await sleep(options.apartMs);
    second = runWith(start + options.apartMs - options.setupMs);
  }
  const runs: [ActionRun, ActionRun] = [await first, await second];
  return classify(f, options, token, runs, exchangeCount(f) - exchangesBefore);
}

async function classify(
  f: Fixture,
  options: PairOptions,
  token: string,
  runs: [ActionRun, ActionRun],
  exchanges: number,
): Promise<PairResult> {
  const stored = f.stored(options.secret) ?? '';
  const losing = runs.find((r) => r.code !== 0);
  const loserLine = losing === undefined ? undefined : errorLine(losing);
  return {
    runs,
    winners: runs.filter((r) => r.code === 0).length,
    loser: loserLine === undefined ? undefined : outcome(loserLine, f.dev.urls.mytoken_server),
    loserLine,
    exchanges,
    rotated: stored !== token,
    valid: await isValid(f.dev.urls.mytoken_server, stored),
    leaks: await leaks(runs, [token, stored]),
  };
}

function outcome(line: string, server: string): LoserOutcome {
  if (/after this job started .*so the mytoken in hand is superseded and was not used/.test(line)) {
    return 'stopped';
  }
  if (line.startsWith('the mytoken server refused the mytoken as expired, revoked or superseded')) {
    return 'refused';
  }
  if (line.startsWith(`the mytoken server ${server} failed (500 internal_server_error`)) {
    return 'lost-in-server';
  }
  return 'other';
}

/** Every token either run saw, on every surface of both runs except the masker's lines and the AT output. */
async function leaks(runs: ActionRun[], tokens: string[]): Promise<string[]> {
  const canaries = new Canaries();
  for (const [label, value] of Object.entries(GITHUB_TOKENS)) canaries.add(label, value);
  for (const value of tokens) canaries.add('mytoken', value);
  for (const run of runs) canaries.addMasked(run.stdout);
  const found: string[] = [];
  for (const [i, run] of runs.entries()) {
    const outputs = Object.entries(run.outputs).filter(([name]) => name !== 'access-token');
    const files = await readTree(run.dir, {
      except: [run.env.GITHUB_OUTPUT as string, run.env.GITHUB_ENV as string],
    });
    const surfaces = {
      stdout: withoutMaskLines(run.stdout),
      stderr: run.stderr,
      outputs: JSON.stringify(outputs),
      ...files,
    };
    for (const leak of findCanaries(canaries, surfaces)) {
      found.push(`run ${i + 1}: ${leak.canary} (${leak.form}) in ${leak.surface}`);
    }
  }
  return found;
}

function exchangeCount(f: Fixture): number {
  const counts = f.dev.stats().requests['/api/v0/token/access'] ?? {};
  return Object.values(counts).reduce((a, b) => a + b, 0);
}

async function waitForWrite(f: Fixture, secret: string, token: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (f.stored(secret) === token) {
    if (Date.now() > deadline) throw new Error(`the first run never wrote ${secret} back`);
    await sleep(10);
  }
}
