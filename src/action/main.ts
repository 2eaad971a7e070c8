/**
 * The bundle's entry point (`dist/index.js`), in three roles: the main step, the post step (which the runner
 * starts with the state the main step saved), and the `mytoken-access-token` command of the long-job mode. It
 * adapts `@actions/core` to `ActionCore` once; nothing below imports the toolkit.
 */
import * as core from '@actions/core';
import { resolve } from 'node:path';
import type { ActionCore } from './core.ts';
import { HELPER_MODE, printAccessToken, stopLongJobMode } from './long-job.ts';
import { run } from './run.ts';

const POST_STATE = 'is_post';

const actionsCore: ActionCore = {
  getInput: (name) => core.getInput(name, { trimWhitespace: false }),
  setSecret: (value) => core.setSecret(value),
  setOutput: (name, value) => core.setOutput(name, value),
  exportVariable: (name, value) => core.exportVariable(name, value),
  addPath: (path) => core.addPath(path),
  saveState: (name, value) => core.saveState(name, value),
  getState: (name) => core.getState(name),
  debug: (message) => core.debug(message),
  info: (message) => core.info(message),
  notice: (message) => core.notice(message),
  warning: (message) => core.warning(message),
  setFailed: (message) => core.setFailed(message),
  appendSummary: async (markdown) => {
    if (!process.env.GITHUB_STEP_SUMMARY) return;
    await core.summary.addRaw(markdown).write();
  },
};

async function main(): Promise<void> {
  const script = resolve(process.argv[1] ?? 'dist/index.js');
  if (process.argv[2] === HELPER_MODE) {
    process.exitCode = await printAccessToken(process.argv[3], {
      stdout: (s) => process.stdout.write(s),
      stderr: (s) => process.stderr.write(s),
    });
    return;
  }
  if (actionsCore.getState(POST_STATE) === 'true') {
    await stopLongJobMode(actionsCore);
    return;
  }
  actionsCore.saveState(POST_STATE, 'true');
  await run({
    core: actionsCore,
    env: process.env,
    entry: { node: process.execPath, script },
    retryBaseDelayMs: milliseconds(process.env.MYTOKEN_ACTION_RETRY_BASE_MS, 0),
    timeoutMs: milliseconds(process.env.MYTOKEN_ACTION_TIMEOUT_MS, 1),
  });
}

/**
 * MYTOKEN_ACTION_RETRY_BASE_MS shortens the retry backoffs and MYTOKEN_ACTION_TIMEOUT_MS the per-attempt
 * timeouts (connect, and answer), for the mytoken server and GitHub alike; the black-box tests set them so that a
 * lasting outage or a hanging server does not cost them minutes. Not inputs: workflows have no reason to change
 * them.
 */
function milliseconds(value: string | undefined, min: number): number | undefined {
  const ms = Number(value);
  return value !== undefined && Number.isInteger(ms) && ms >= min ? ms : undefined;
}

main().catch((error: unknown) => {
  // run() reports its own failures; this catches only a crash of the entry itself.
  core.setFailed(`unexpected failure: ${error instanceof Error ? error.message : String(error)}`);
});
