/**
 * The Action's overhead: wall time from spawning `node dist/index.js` (as the runner does, with
 * `INPUT_*` variables and fresh file-command files) to its outputs being written, against a plain
 * `curl` + `jq` exchange of the same token run the way a composite step runs (`bash --noprofile
 * --norc -eo pipefail`). A rotating mytoken (written back to a secret of the loopback GitHub fake)
 * is timed too; the curl baseline has no equivalent of that write-back.
 */
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { mkdtemp, readFile, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { gzipSync } from 'node:zlib';

import { parse } from 'yaml';

import { startGitHubFake } from '../../test/support/github-fake.ts';
import { BenchError } from './errors.ts';
import { cleanEnv, sleep } from './procs.ts';
import { summarize, type Summary } from './stats.ts';
import { NODE, ROOT, type World } from './world.ts';

const DIST = join(ROOT, 'dist/index.js');
const WRITER = 'ghp_benchWriter0000000000000000000000001';
const REPO = 'acme/app';
const RUN_TIMEOUT_MS = 30_000;

/** What a composite step would run: exchange the mytoken, mask the AT, set the output. */
export const CURL_STEP = `body=$(jq -cn --arg t "$MYTOKEN" '{grant_type: "mytoken", mytoken: $t}')
at=$(printf '%s' "$body" | curl -sS --fail-with-body -H 'content-type: application/json' \\
  --data-binary @- "$MYTOKEN_SERVER/api/v0/token/access" | jq -r .access_token)
echo "::add-mask::$at"
echo "access-token=$at" >> "$GITHUB_OUTPUT"
`;

export interface Timing {
  /** Spawn to the last write of the outputs file. */
  outputsMs: Summary;
  /** Spawn to process exit. */
  exitMs: Summary;
}

export interface ActionResult {
  runs: number;
  action: Timing;
  curl: Timing;
  rotating: Timing;
  rotatingRuns: number;
  /** Spawn to exit of `node -e 0`: what any Node step costs before its own code runs. */
  nodeStartMs: Summary;
  bundle: { indexBytes: number; indexGzipBytes: number; distBytes: number };
  tools: { curl: string; jq: string };
}

interface Sample {
  outputsMs: number;
  exitMs: number;
}

export function actionAvailable(): boolean {
  return existsSync(DIST);
}

async function timeExit(command: string, args: string[]): Promise<number> {
  const t0 = performance.now();
  await new Promise((resolve, reject) => {
    const child = spawn(command, args, { env: cleanEnv(), stdio: 'ignore' });
    child.on('error', reject);
    child.on('close', resolve);
  });
  return performance.now() - t0;
}

/** Runs one step in a fresh runner folder under `tmp` and times it. */
async function timeStep(
  tmp: string,
  command: string,
  args: string[],
  vars: Record<string, string>,
): Promise<Sample> {
  const dir = await mkdtemp(join(tmp, 'step-'));
  try {
    const env = cleanEnv({ ...vars, ...(await runnerFiles(dir)) });
    const t0 = performance.timeOrigin + performance.now();
    const code = await new Promise<number | null>((resolve, reject) => {
      const child = spawn(command, args, { env, cwd: dir, stdio: 'ignore' });
      const timer = setTimeout(() => child.kill('SIGKILL'), RUN_TIMEOUT_MS);
      child.on('error', reject);
      child.on('close', (c) => {
        clearTimeout(timer);
        resolve(c);
      });
    });
    const exitMs = performance.timeOrigin + performance.now() - t0;
    const output = env.GITHUB_OUTPUT as string;
    if (code !== 0) throw new BenchError('ERR_BENCH_EXITED', `${command} step exited with ${code}`);
    if (!(await readFile(output, 'utf8')).includes('access-token')) {
      throw new BenchError('ERR_BENCH_MISSING', `${command} step wrote no access-token output`);
    }
    return { outputsMs: (await stat(output)).mtimeMs - t0, exitMs };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function runnerFiles(dir: string): Promise<Record<string, string>> {
  const files: Record<string, string> = {};
  for (const name of ['OUTPUT', 'ENV', 'STATE', 'PATH', 'STEP_SUMMARY']) {
    files[`GITHUB_${name}`] = join(dir, name.toLowerCase());
    await writeFile(files[`GITHUB_${name}`] as string, '');
  }
  const event = join(dir, 'event.json');
  await writeFile(event, '{}');
  // The runner writes the event file as the job starts: a second ago, before the secret was read.
  const started = new Date(Date.now() - 1000);
  await utimes(event, started, started);
  return {
    ...files,
    GITHUB_EVENT_PATH: event,
    GITHUB_ACTIONS: 'true',
    CI: 'true',
    GITHUB_REPOSITORY: REPO,
    GITHUB_RUN_ID: '1',
    GITHUB_RUN_ATTEMPT: '1',
    RUNNER_NAME: 'bench',
    RUNNER_TEMP: dir,
  };
}

/** `INPUT_*` variables: every action.yml default (as the runner passes them), then `inputs`. */
function inputVars(inputs: Record<string, string>): Record<string, string> {
  const meta = parse(readFileSync(join(ROOT, 'action.yml'), 'utf8')) as {
    inputs: Record<string, { default?: string }>;
  };
  const vars: Record<string, string> = {};
  for (const [name, spec] of Object.entries(meta.inputs)) {
    // `${{ github.token }}` becomes a job token the GitHub fake does not know.
    const value = spec.default?.includes('${{') ? 'ghs_benchJobToken' : spec.default;
    if (value !== undefined) vars[`INPUT_${name.toUpperCase()}`] = value;
  }
  for (const [name, value] of Object.entries(inputs)) vars[`INPUT_${name.toUpperCase()}`] = value;
  return vars;
}

export async function measureAction(
  world: World,
  opts: { runs: number; rotatingRuns: number },
): Promise<ActionResult> {
  const github = await startGitHubFake({ tokens: { [WRITER]: 'write' } });
  try {
    const plain = await world.mint();
    const server = world.server;
    const action = () =>
      timeStep(world.tmp, NODE, [DIST], {
        ...inputVars({ mytoken: plain, 'mytoken-server': server }),
        GITHUB_API_URL: github.url,
      });
    const curl = () =>
      timeStep(world.tmp, 'bash', ['--noprofile', '--norc', '-eo', 'pipefail', '-c', CURL_STEP], {
        MYTOKEN: plain,
        MYTOKEN_SERVER: server,
      });
    // One unmeasured run each warms the file cache; then they alternate, so that a busy moment
    // of the machine hurts both alike.
    await action();
    await curl();
    const a: Sample[] = [];
    const c: Sample[] = [];
    const n: number[] = [];
    for (let i = 0; i < opts.runs; i++) {
      a.push(await action());
      c.push(await curl());
      n.push(await timeExit(NODE, ['-e', '0']));
    }
    const rotating = await rotatingRuns(world, github, opts.rotatingRuns);
    return {
      runs: opts.runs,
      action: timing(a),
      curl: timing(c),
      rotating: timing(rotating),
      rotatingRuns: rotating.length,
      nodeStartMs: summarize(n),
      bundle: bundleSize(),
      tools: { curl: toolVersion('curl'), jq: toolVersion('jq') },
    };
  } finally {
    await github.close();
  }
}

async function rotatingRuns(
  world: World,
  github: Awaited<ReturnType<typeof startGitHubFake>>,
  runs: number,
): Promise<Sample[]> {
  const scope = { repo: REPO };
  let token = await world.mint({ rotation: ['on_AT'] });
  github.setSecret(scope, 'MYTOKEN', token, { updatedAt: new Date(Date.now() - 60_000) });
  const samples: Sample[] = [];
  for (let i = 0; i < runs; i++) {
    // GitHub keeps secret times in whole seconds: the next job must start in a later second than
    // the last write-back, or the Action rightly sees the secret as written by a concurrent run.
    await sleep(1000 - (Date.now() % 1000) + 20);
    samples.push(
      await timeStep(world.tmp, NODE, [DIST], {
        ...inputVars({
          mytoken: token,
          'mytoken-server': world.server,
          'secret-name': 'MYTOKEN',
          'github-token': WRITER,
        }),
        GITHUB_API_URL: github.url,
      }),
    );
    const next = github.secret(scope, 'MYTOKEN')?.value;
    if (next === undefined || next === token) {
      throw new BenchError('ERR_BENCH_MISSING', 'the action wrote no rotated mytoken back');
    }
    token = next;
  }
  return samples;
}

function timing(samples: Sample[]): Timing {
  return {
    outputsMs: summarize(samples.map((s) => s.outputsMs)),
    exitMs: summarize(samples.map((s) => s.exitMs)),
  };
}

function bundleSize(): ActionResult['bundle'] {
  const dist = join(ROOT, 'dist');
  const distBytes = readdirSync(dist).reduce((n, f) => n + statSync(join(dist, f)).size, 0);
  const index = readFileSync(DIST);
  return { indexBytes: index.length, indexGzipBytes: gzipSync(index).length, distBytes };
}

function toolVersion(tool: string): string {
  try {
    const out = execFileSync(tool, ['--version'], { encoding: 'utf8' });
    return out.split('\n', 1)[0] ?? 'unknown';
  } catch {
    return 'missing';
  }
}
