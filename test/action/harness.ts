/**
 * Runs the bundled Action (`dist/index.js`) the way the runner does: a child process with `INPUT_*` variables
 * (hyphens kept, every action.yml default copied), fresh file-command files, the usual GITHUB_* / RUNNER_*
 * variables and nothing inherited from the test's environment but PATH and HOME. Parses what the Action left in
 * the file-command files, and checks that secrets were masked before they appeared and never leaked.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, mkdir, readFile, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { expect } from 'vitest';
import { parse } from 'yaml';

export const ROOT = resolve(import.meta.dirname, '../..');
export const NODE = join(ROOT, 'node_modules/.bin/node');
export const DIST = join(ROOT, 'dist/index.js');

/** Recognisable GitHub tokens (canaries): any appearance outside an add-mask line is a leak. */
export const GITHUB_TOKENS = {
  writer: 'ghp_canaryWriter000000000000000000000001',
  reader: 'ghp_canaryReader000000000000000000000002',
  none: 'ghp_canaryNoSecrets0000000000000000000003',
  job: 'ghs_canaryJobToken00000000000000000000004',
} as const;

export const REPO = 'acme/app';

export interface RunOptions {
  /** Inputs by their action.yml names; merged over the defaults. */
  inputs?: Record<string, string>;
  /** Extra or overriding environment variables. */
  env?: Record<string, string>;
  /** Modification time of the event file, i.e. when the runner started the job. Default now. */
  jobStartedAt?: Date;
  /** Extra arguments after dist/index.js. */
  args?: string[];
}

export interface ActionRun {
  code: number | null;
  stdout: string;
  stderr: string;
  outputs: Record<string, string>;
  exported: Record<string, string>;
  state: Record<string, string>;
  path: string[];
  summary: string;
  /** The environment the step ran with (for a post step or a later step). */
  env: Record<string, string>;
  dir: string;
}

let defaults: Record<string, string> | undefined;

/** `INPUT_*` values for every input that has a default in action.yml, as the runner would pass them. */
export async function actionDefaults(): Promise<Record<string, string>> {
  if (defaults !== undefined) return defaults;
  const meta = parse(await readFile(join(ROOT, 'action.yml'), 'utf8')) as {
    inputs: Record<string, { default?: string }>;
  };
  defaults = {};
  for (const [name, spec] of Object.entries(meta.inputs)) {
    if (spec.default === undefined) continue;
    // The runner evaluates `${{ github.token }}`; the job token here is a canary the fake does not know.
    defaults[name] = spec.default.includes('${{') ? GITHUB_TOKENS.job : spec.default;
  }
  return defaults;
}

/** Starts the main step with fresh runner files and waits for it to exit. */
export async function runAction(options: RunOptions = {}): Promise<ActionRun> {
  const dir = await mkdtemp(join(tmpdir(), 'mytoken-action-'));
  const env = await stepEnv(dir, options);
  const eventPath = join(dir, 'event.json');
  await writeFile(eventPath, '{}');
  const started = options.jobStartedAt ?? new Date();
  await utimes(eventPath, started, started);
  return runStep(dir, env, options.args ?? []);
}

/** Starts the post step of `main`, with the state it saved, as the runner does. */
export async function runPost(main: ActionRun): Promise<ActionRun> {
  const env = { ...main.env };
  for (const [name, value] of Object.entries(main.state)) env[`STATE_${name}`] = value;
  await freshFiles(main.dir, env, 'post');
  return runStep(main.dir, env, []);
}

/** Runs a command (e.g. the long-job helper) with the environment a later step would have. */
export function runLaterStep(
  main: ActionRun,
  command: string,
  args: string[] = [],
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const PATH = [...main.path, main.env.PATH].join(':');
  return spawnCollect(command, args, { ...main.env, PATH });
}

async function stepEnv(dir: string, options: RunOptions): Promise<Record<string, string>> {
  const workspace = join(dir, 'workspace');
  const temp = join(dir, 'runner-temp');
  await mkdir(workspace);
  await mkdir(temp);
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: process.env.HOME ?? dir,
    CI: 'true',
    GITHUB_ACTIONS: 'true',
    GITHUB_WORKSPACE: workspace,
    GITHUB_REPOSITORY: REPO,
    GITHUB_REPOSITORY_OWNER: 'acme',
    GITHUB_SERVER_URL: 'https://github.com',
    GITHUB_API_URL: 'https://api.github.invalid',
    GITHUB_ACTION: 'mytoken',
    GITHUB_WORKFLOW: 'ci',
    GITHUB_RUN_ID: '4242',
    GITHUB_RUN_ATTEMPT: '1',
    GITHUB_EVENT_NAME: 'push',
    GITHUB_EVENT_PATH: join(dir, 'event.json'),
    RUNNER_NAME: 'GitHub Actions 7',
    RUNNER_OS: 'Linux',
    RUNNER_TEMP: temp,
  };
  const inputs = { ...(await actionDefaults()), ...options.inputs };
  for (const [name, value] of Object.entries(inputs)) {
    env[`INPUT_${name.replace(/ /g, '_').toUpperCase()}`] = value;
  }
  Object.assign(env, options.env);
  await freshFiles(dir, env, 'main');
  return env;
}

async function freshFiles(dir: string, env: Record<string, string>, step: string): Promise<void> {
  const files = {
    OUTPUT: 'output',
    ENV: 'env',
    STATE: 'state',
    PATH: 'path',
    STEP_SUMMARY: 'summary',
  };
  for (const [name, file] of Object.entries(files)) {
    const path = join(dir, `${step}-${file}`);
    await writeFile(path, '');
    env[`GITHUB_${name}`] = path;
  }
}

async function runStep(
  dir: string,
  env: Record<string, string>,
  args: string[],
): Promise<ActionRun> {
  const result = await spawnCollect(NODE, [DIST, ...args], env, env.GITHUB_WORKSPACE);
  const read = (name: string) => readFile(env[name] as string, 'utf8');
  return {
    ...result,
    outputs: parseFileCommands(await read('GITHUB_OUTPUT')),
    exported: parseFileCommands(await read('GITHUB_ENV')),
    state: parseFileCommands(await read('GITHUB_STATE')),
    path: (await read('GITHUB_PATH')).split('\n').filter(Boolean),
    summary: await read('GITHUB_STEP_SUMMARY'),
    env,
    dir,
  };
}

function spawnCollect(
  command: string,
  args: string[],
  env: Record<string, string>,
  cwd?: string,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(command, args, { env, cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
    child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    child.on('error', reject);
    child.on('close', (code) => resolvePromise({ code, stdout, stderr }));
  });
}

/** Parses `NAME<<DELIM\nVALUE\nDELIM` records (what @actions/core writes) and `NAME=VALUE` lines. */
export function parseFileCommands(text: string): Record<string, string> {
  const result: Record<string, string> = {};
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] ?? '';
    const heredoc = /^([^=<]+)<<(.+)$/.exec(line);
    if (heredoc !== null) {
      const [, name = '', delimiter] = heredoc;
      const end = lines.indexOf(delimiter as string, i + 1);
      result[name] = lines.slice(i + 1, end).join('\n');
      i = end;
    } else if (line.includes('=')) {
      result[line.slice(0, line.indexOf('='))] = line.slice(line.indexOf('=') + 1);
    }
  }
  return result;
}

/** The one `::error::` line of a failed run. */
export function errorLine(run: ActionRun): string | undefined {
  const lines = run.stdout.split('\n').filter((l) => l.startsWith('::error::'));
  expect(lines.length).toBeLessThanOrEqual(1);
  return lines[0]?.slice('::error::'.length).replace(/%0A/g, '\n').replace(/%25/g, '%');
}

/**
 * Every secret is announced with `::add-mask::` on stdout before its first other appearance there, and appears
 * nowhere else: not in other stdout lines, stderr, the summary, the state or the exported variables. Outputs may
 * hold exactly the values named in `allowedOutputs`, exported variables those in `allowedExports`.
 */
export function expectNoLeaks(
  run: ActionRun,
  secrets: readonly string[],
  allowed: { outputs?: string[]; exports?: string[] } = {},
): void {
  for (const secret of secrets) {
    const lines = run.stdout.split('\n');
    const masked = lines.findIndex((l) => l === `::add-mask::${secret}`);
    const first = lines.findIndex((l) => l.includes(secret));
    if (first !== -1) expect(first, 'first appearance is the add-mask line').toBe(masked);
    const others = lines.filter((l) => l.includes(secret) && l !== `::add-mask::${secret}`);
    expect(others, 'stdout lines with a secret').toEqual([]);
    expect(run.stderr.includes(secret), 'secret in stderr').toBe(false);
    expect(run.summary.includes(secret), 'secret in summary').toBe(false);
    expect(JSON.stringify(run.state).includes(secret), 'secret in state').toBe(false);
    for (const [name, value] of Object.entries(run.outputs)) {
      if (value.includes(secret)) expect(allowed.outputs ?? []).toContain(name);
    }
    for (const [name, value] of Object.entries(run.exported)) {
      if (value.includes(secret)) expect(allowed.exports ?? []).toContain(name);
    }
  }
}

/** True when stdout announced `secret` to the masker. */
export function wasMasked(run: ActionRun, secret: string): boolean {
  return run.stdout.split('\n').includes(`::add-mask::${secret}`);
}
