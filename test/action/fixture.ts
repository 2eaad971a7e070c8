/**
 * One dev server and one GitHub fake per test file, with shorthands for the common case: a rotating mytoken held
 * in a repository secret that was written a minute before the job started.
 */
import { mint, startDevServer, type DevServer, type MintOptions } from '../../devserver/index.ts';
import {
  startGitHubFake,
  type GitHubFake,
  type GitHubFakeOptions,
  type SecretScope,
} from '../support/github-fake.ts';
import { GITHUB_TOKENS, REPO, runAction, type ActionRun, type RunOptions } from './harness.ts';

export interface Fixture {
  dev: DevServer;
  github: GitHubFake;
  /** Mints a mytoken on the dev server (rotating on AT unless `options.rotation` says otherwise). */
  mint(options?: Partial<MintOptions>): Promise<string>;
  /** Mints a rotating token and stores it in `name` (repository secret), updated a minute ago. */
  seed(name?: string, scope?: SecretScope, options?: Partial<MintOptions>): Promise<string>;
  /** Runs the Action with `mytoken`, the dev server, secret MYTOKEN and the writer token. */
  run(mytoken: string, options?: RunOptions): Promise<ActionRun>;
  /** The stored value of a secret. */
  stored(name?: string, scope?: SecretScope): string | undefined;
  close(): Promise<void>;
}

export const REPO_SCOPE: SecretScope = { repo: REPO };

export async function startFixture(githubOptions: GitHubFakeOptions = {}): Promise<Fixture> {
  const dev = await startDevServer({ port: 0 });
  const github = await startGitHubFake({
    tokens: {
      [GITHUB_TOKENS.writer]: 'write',
      [GITHUB_TOKENS.reader]: 'read',
      [GITHUB_TOKENS.none]: 'none',
    },
    ...githubOptions,
  });
  const mintOn = (options: Partial<MintOptions> = {}) =>
    mint({ server: dev.urls.mytoken_server, rotation: ['on_AT'], ...options });
  return {
    dev,
    github,
    mint: mintOn,
    async seed(name = 'MYTOKEN', scope = REPO_SCOPE, options = {}) {
      const token = await mintOn(options);
      github.setSecret(scope, name, token, { updatedAt: new Date(Date.now() - 60_000) });
      return token;
    },
    run: (mytoken, options = {}) =>
      runAction({
        ...options,
        inputs: {
          mytoken,
          'mytoken-server': dev.urls.mytoken_server,
          'secret-name': 'MYTOKEN',
          'github-token': GITHUB_TOKENS.writer,
          ...options.inputs,
        },
        env: { GITHUB_API_URL: github.url, ...options.env },
      }),
    stored: (name = 'MYTOKEN', scope = REPO_SCOPE) => github.secret(scope, name)?.value,
    async close() {
      await github.close();
      await dev.close();
    },
  };
}
