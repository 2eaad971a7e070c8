/**
 * Wall time of the bundled Action against the local dev server and the GitHub fake: from spawning
 * `node dist/index.js` to the outputs file being written, and to process exit, over several runs of a rotating
 * mytoken (write-back included) and of a non-rotating one (no GitHub calls). Also prints the bundle size.
 *
 *   node bench/action-walltime.ts [runs]      (default 20 runs per case)
 */
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { mint, startDevServer } from '../devserver/index.ts';
import { startGitHubFake } from '../test/support/github-fake.ts';

const ROOT = resolve(import.meta.dirname, '..');
const NODE = join(ROOT, 'node_modules/.bin/node');
const DIST = join(ROOT, 'dist/index.js');
const WRITER = 'ghp_benchWriter0000000000000000000000000';

interface Sample {
  outputsMs: number;
  exitMs: number;
}

async function runOnce(inputs: Record<string, string>, apiUrl: string): Promise<Sample> {
  const dir = await mkdtemp(join(tmpdir(), 'mytoken-bench-'));
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    GITHUB_API_URL: apiUrl,
    GITHUB_REPOSITORY: 'acme/app',
    GITHUB_RUN_ID: '1',
    GITHUB_EVENT_PATH: join(dir, 'event.json'),
    RUNNER_TEMP: dir,
    RUNNER_NAME: 'bench',
  };
  for (const name of ['OUTPUT', 'ENV', 'STATE', 'PATH', 'STEP_SUMMARY']) {
    env[`GITHUB_${name}`] = join(dir, name.toLowerCase());
    await writeFile(env[`GITHUB_${name}`] as string, '');
  }
  for (const [name, value] of Object.entries(inputs)) env[`INPUT_${name.toUpperCase()}`] = value;
  await writeFile(env.GITHUB_EVENT_PATH as string, '{}');
  const started = new Date();
  await utimes(env.GITHUB_EVENT_PATH as string, started, started);

  const t0 = Date.now();
  const code = await new Promise<number | null>((done) => {
    const child = spawn(NODE, [DIST], { env, stdio: 'ignore' });
    child.on('close', done);
  });
  const exitMs = Date.now() - t0;
  if (code !== 0) throw new Error(`action exited with ${code}`);
  const outputsMs = (await stat(env.GITHUB_OUTPUT as string)).mtimeMs - t0;
  if (!(await readFile(env.GITHUB_OUTPUT as string, 'utf8')).includes('access-token')) {
    throw new Error('no access-token output');
  }
  await rm(dir, { recursive: true, force: true });
  return { outputsMs, exitMs };
}

function describe(label: string, samples: Sample[]): string {
  const stats = (values: number[]) => {
    const s = [...values].sort((a, b) => a - b);
    const at = (q: number) => (s[Math.min(s.length - 1, Math.floor(q * s.length))] ?? 0).toFixed(0);
    return `min ${at(0)} / median ${at(0.5)} / p90 ${at(0.9)} / max ${at(1 - 1e-9)} ms`;
  };
  return [
    `${label} (${samples.length} runs)`,
    `  start → outputs written: ${stats(samples.map((s) => s.outputsMs))}`,
    `  start → exit:            ${stats(samples.map((s) => s.exitMs))}`,
  ].join('\n');
}

async function main(): Promise<void> {
  const runs = Number(process.argv[2] ?? 20);
  const size = (await stat(DIST)).size;
  console.log(`dist/index.js: ${(size / 1024).toFixed(0)} KiB (${size} bytes)`);

  const dev = await startDevServer({ port: 0 });
  const github = await startGitHubFake({ tokens: { [WRITER]: 'write' } });
  try {
    const server = dev.urls.mytoken_server;
    const fixed = await mint({ server });
    const plain: Sample[] = [];
    for (let i = 0; i < runs; i++) {
      plain.push(await runOnce({ mytoken: fixed, 'mytoken-server': server }, github.url));
    }
    console.log(describe('non-rotating mytoken, no write-back', plain));

    let token = await mint({ server, rotation: ['on_AT'] });
    const scope = { repo: 'acme/app' };
    github.setSecret(scope, 'MYTOKEN', token, { updatedAt: new Date(Date.now() - 60_000) });
    const rotating: Sample[] = [];
    const inputs = { 'mytoken-server': server, 'secret-name': 'MYTOKEN', 'github-token': WRITER };
    for (let i = 0; i < runs; i++) {
      rotating.push(await runOnce({ ...inputs, mytoken: token }, github.url));
      token = github.secret(scope, 'MYTOKEN')?.value as string;
    }
    console.log(describe('rotating mytoken, written back to a repository secret', rotating));
  } finally {
    await github.close();
    await dev.close();
  }
}

await main();
