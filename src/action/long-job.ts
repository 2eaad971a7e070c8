/**
 * Long jobs: the access token dies before the job ends. With `sub-token-lifetime` set, the Action mints a
 * restricted sub-mytoken for the rest of the job (only the `AT` capability, no rotation, expiring with the job,
 * limited to the requested scope and audience), keeps it in a 0600 file under RUNNER_TEMP and puts a
 * `mytoken-access-token` command on PATH that prints a fresh access token. The post step revokes the sub-token and
 * deletes the file. The sub-token never rotates, so later steps may call the command in parallel.
 */
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MemoryTokenStore, MytokenClient, type IssuedMytoken } from '../client/index.ts';
import type { ActionCore, ActionEnv } from './core.ts';
import { ActionError } from './errors.ts';
import type { ActionInputs } from './inputs.ts';
import { failureMessage } from './messages.ts';

/** The name of the command put on PATH. */
export const HELPER_COMMAND = 'mytoken-access-token';
/** The first argument that makes `dist/index.js` act as that command. */
export const HELPER_MODE = 'access-token';
/** State key under which the main step leaves the helper's directory for the post step. */
export const HELPER_STATE = 'helper_dir';

/** What the helper needs to mint access tokens; stored 0600 next to nothing else. */
interface HelperConfig {
  server: string;
  subtoken: string;
  scope: string | undefined;
  audience: string | undefined;
  oidcIssuer: string | undefined;
  allowInsecureHttp: boolean;
}

export interface SubtokenResult {
  expiresAt: Date;
  helperDir: string;
}

/** Mints the job's sub-token with `client` and installs the command. */
export async function startLongJobMode(
  client: MytokenClient,
  inputs: ActionInputs,
  core: ActionCore,
  env: ActionEnv,
  entry: { node: string; script: string },
): Promise<SubtokenResult> {
  const lifetime = inputs.subTokenLifetime ?? 0;
  const expiresAt = new Date((Math.floor(Date.now() / 1000) + lifetime) * 1000);
  const issued = await mintSubtoken(client, inputs, expiresAt, env);
  if (issued.mytoken === undefined) {
    throw new ActionError('ERR_ACTION_HELPER', 'the mytoken server issued no sub-token');
  }
  // The server may shorten the lifetime to fit the parent's restrictions; its answer is what counts.
  const actualExpiry =
    issued.expiresIn === undefined ? expiresAt : new Date(Date.now() + issued.expiresIn * 1000);
  const helperDir = await mkdtemp(join(env.RUNNER_TEMP || tmpdir(), 'mytoken-'));
  await chmod(helperDir, 0o700);
  core.saveState(HELPER_STATE, helperDir);
  const configPath = join(helperDir, 'helper.json');
  const config: HelperConfig = {
    server: inputs.server,
    subtoken: issued.mytoken,
    scope: inputs.scope,
    audience: inputs.audience,
    oidcIssuer: inputs.oidcIssuer,
    allowInsecureHttp: inputs.allowInsecureHttp,
  };
  await writeFile(configPath, JSON.stringify(config), { mode: 0o600, flag: 'wx' });
  core.addPath(await writeCommand(helperDir, configPath, entry));
  return { expiresAt: actualExpiry, helperDir };
}

function mintSubtoken(
  client: MytokenClient,
  inputs: ActionInputs,
  expiresAt: Date,
  env: ActionEnv,
): Promise<IssuedMytoken> {
  const clause: Record<string, unknown> = { exp: Math.floor(expiresAt.getTime() / 1000) };
  if (inputs.scope !== undefined) clause.scope = inputs.scope;
  if (inputs.audience !== undefined) clause.audience = inputs.audience.split(' ');
  const run = [env.GITHUB_REPOSITORY, env.GITHUB_RUN_ID].filter(Boolean).join(' run ');
  return client.createSubtoken({
    capabilities: ['AT'],
    restrictions: [clause],
    name: `GitHub Actions job${run === '' ? '' : ` ${run}`}`.slice(0, 100),
    oidcIssuer: inputs.oidcIssuer,
  });
}

/** Writes the POSIX and Windows forms of the command; returns the directory to add to PATH. */
async function writeCommand(
  helperDir: string,
  configPath: string,
  entry: { node: string; script: string },
): Promise<string> {
  const bin = join(helperDir, 'bin');
  await mkdir(bin, { mode: 0o700 });
  const sh = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
  const posix = `#!/bin/sh\nexec ${sh(entry.node)} ${sh(entry.script)} ${HELPER_MODE} ${sh(configPath)}\n`;
  await writeFile(join(bin, HELPER_COMMAND), posix, { mode: 0o700 });
  const cmd = `@"${entry.node}" "${entry.script}" ${HELPER_MODE} "${configPath}"\r\n`;
  await writeFile(join(bin, `${HELPER_COMMAND}.cmd`), cmd, { mode: 0o700 });
  return bin;
}

/**
 * The command itself: prints one fresh access token on stdout. The token is first announced to the runner's
 * masker on stderr (the runner reads workflow commands from both streams), so a step that prints it by mistake
 * shows `***`. Returns the exit code.
 */
export async function printAccessToken(
  configPath: string | undefined,
  out: { stdout: (s: string) => void; stderr: (s: string) => void },
): Promise<number> {
  let server: string | undefined;
  try {
    const config = await readHelperConfig(configPath);
    server = config.server;
    const client = helperClient(config, (secret) => out.stderr(`::add-mask::${secret}\n`));
    try {
      const at = await client.accessToken({
        scope: config.scope,
        audience: config.audience,
        oidcIssuer: config.oidcIssuer,
        comment: 'GitHub Actions long-job helper',
      });
      out.stdout(`${at.accessToken}\n`);
      return 0;
    } finally {
      await client.close();
    }
  } catch (error) {
    out.stderr(`${HELPER_COMMAND}: ${failureMessage(error, { secretName: undefined, server })}\n`);
    return 1;
  }
}

/** Post step: revokes the sub-token and removes its directory. Never fails the job. */
export async function stopLongJobMode(core: ActionCore): Promise<void> {
  const dir = core.getState(HELPER_STATE);
  if (dir === '') return;
  let server: string | undefined;
  try {
    const config = await readHelperConfig(join(dir, 'helper.json'));
    server = config.server;
    core.setSecret(config.subtoken);
    const client = helperClient(config, (secret) => core.setSecret(secret));
    try {
      await client.revoke();
      core.info('Revoked the sub-token of this job');
    } finally {
      await client.close();
    }
  } catch (error) {
    const message = failureMessage(error, { secretName: undefined, server });
    core.warning(`could not revoke the sub-token of this job: ${message}`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function helperClient(config: HelperConfig, onSecret: (secret: string) => void): MytokenClient {
  return new MytokenClient({
    server: config.server,
    store: new MemoryTokenStore(config.subtoken),
    allowInsecureHttp: config.allowInsecureHttp,
    onSecret,
    http: { userAgent: 'mytoken-action' },
  });
}

async function readHelperConfig(path: string | undefined): Promise<HelperConfig> {
  if (path === undefined) {
    throw new ActionError(
      'ERR_ACTION_HELPER',
      `usage: ${HELPER_COMMAND} (set up by the mytoken action)`,
    );
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(await readFile(path, 'utf8'));
  } catch (cause) {
    throw new ActionError(
      'ERR_ACTION_HELPER',
      `cannot read ${path}: the sub-token of this job is gone (the job's post step has run?)`,
      { cause },
    );
  }
  const config = parsed as Partial<HelperConfig>;
  if (typeof config.server !== 'string' || typeof config.subtoken !== 'string') {
    throw new ActionError('ERR_ACTION_HELPER', `${path} is not a helper configuration`);
  }
  return config as HelperConfig;
}
