/**
 * Checks shared by the reliability tests: is a mytoken still valid, did the Action fail the way a user should see
 * (one line, exit 1, no stack trace), and did any token leak from a run of the Action.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { expect } from 'vitest';
import { MemoryTokenStore, MytokenClient, MytokenError } from '../../src/client/index.ts';
import { GITHUB_TOKENS, errorLine, type ActionRun } from '../action/harness.ts';
import { Canaries, assertNoCanaries, readTree, withoutMaskLines } from '../support/canary.ts';
import type { GitHubFake } from '../support/github-fake.ts';
import { startFixture, type Fixture } from '../action/fixture.ts';
import type { GitHubFakeOptions } from '../support/github-fake.ts';

/** Whether the server still accepts `token`, asked with an introspection (which never rotates it). */
export async function isValid(server: string, token: string): Promise<boolean> {
  const client = new MytokenClient({ server, store: new MemoryTokenStore(token) });
  try {
    await client.introspect();
    return true;
  } catch (error) {
    if (error instanceof MytokenError && error.code === 'ERR_MYTOKEN_INVALID_TOKEN') return false;
    throw error;
  } finally {
    await client.close();
  }
}

/**
 * Runs `fn` with a dev server and a GitHub fake of its own (they start in milliseconds), so that tests with faults
 * can run concurrently: each Action run is a child process, and vitest gives a small machine one worker only.
 */
export async function withFixture<T>(
  fn: (f: Fixture) => Promise<T>,
  options: GitHubFakeOptions = {},
): Promise<T> {
  const f = await startFixture(options);
  try {
    return await fn(f);
  } finally {
    await f.close();
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Waits until `check` holds (something a server finishes in the background), failing after `limitMs`. */
export async function until(check: () => boolean, what: string, limitMs = 10_000): Promise<void> {
  const deadline = Date.now() + limitMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`gave up waiting: ${what}`);
    await sleep(20);
  }
}

/** A failed run as the user must see it: exit 1, exactly `line` as the one error, no stack trace, no outputs. */
export function expectActionFailure(run: ActionRun, line: string | RegExp): void {
  expect(run.code, 'exit code').toBe(1);
  const error = errorLine(run);
  if (typeof line === 'string') expect(error).toBe(line);
  else expect(error).toMatch(line);
  expect(run.stderr, 'stderr').toBe('');
  expect(run.stdout, 'a stack trace').not.toMatch(/^\s+at .+:\d+:\d+\)?$/m);
  expect(run.outputs).toEqual({});
}

/**
 * Canaries for one run: the GitHub tokens of the harness, every value the run announced with `::add-mask::`, and
 * the tokens the test knows of (input, stored before and after, ...).
 */
export function runCanaries(
  run: ActionRun,
  tokens: Record<string, string | undefined> = {},
): Canaries {
  const canaries = new Canaries();
  for (const [label, value] of Object.entries(GITHUB_TOKENS)) canaries.add(`${label} token`, value);
  for (const [label, value] of Object.entries(tokens)) canaries.add(label, value);
  return canaries.addMasked(run.stdout);
}

/**
 * No canary outside the places meant for it: not in stdout (other than `::add-mask::` lines), stderr, the summary,
 * the state, path or env files, any other file the run left in its directory (RUNNER_TEMP and the workspace
 * included), nor in an output or exported variable other than those `allowed`.
 */
export async function expectNoLeaks(
  run: ActionRun,
  canaries: Canaries,
  allowed: { outputs?: string[]; exports?: string[] } = {},
): Promise<void> {
  const outputFile = run.env.GITHUB_OUTPUT as string;
  const envFile = run.env.GITHUB_ENV as string;
  const surfaces: Record<string, string> = {
    stdout: withoutMaskLines(run.stdout),
    stderr: run.stderr,
    ...(await readTree(run.dir, { except: [outputFile, envFile] })),
  };
  for (const [name, value] of Object.entries(run.outputs)) {
    if (!(allowed.outputs ?? []).includes(name)) surfaces[`output ${name}`] = value;
  }
  for (const [name, value] of Object.entries(run.exported)) {
    if (!(allowed.exports ?? []).includes(name)) surfaces[`exported ${name}`] = value;
  }
  assertNoCanaries(canaries, surfaces);
  // An allowed output holds its own value (the access token) and no other secret.
  for (const name of allowed.outputs ?? []) {
    const value = run.outputs[name] ?? '';
    assertNoCanaries(canaries.except(value), { [`output ${name}`]: value });
  }
  for (const name of allowed.exports ?? []) {
    const value = run.exported[name] ?? '';
    assertNoCanaries(canaries.except(value), { [`exported ${name}`]: value });
  }
}

/** PUT requests the GitHub fake saw for a repository secret of `acme/app`. */
export function secretWrites(github: GitHubFake, name: string): number {
  const path = `/repos/acme/app/actions/secrets/${name}`;
  return github.requests.filter((r) => r.method === 'PUT' && r.path.endsWith(path)).length;
}

/** A loopback server that must never be contacted; it counts the requests that reach it anyway. */
export interface Elsewhere {
  server: Server;
  url: string;
  hits: number;
}

/** Starts an `Elsewhere`: discovery answers rewritten to point away from the server point here. */
export async function startElsewhere(): Promise<Elsewhere> {
  const server = createServer((_req, res) => {
    elsewhere.hits += 1;
    res.writeHead(500).end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const elsewhere: Elsewhere = {
    server,
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    hits: 0,
  };
  return elsewhere;
}
