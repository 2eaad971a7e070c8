/**
 * The committed bundle is what the runner executes, so it must be exactly what the sources build to, and it must
 * carry the licences of the code it bundles.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, test } from 'vitest';
import { NODE, ROOT } from './harness.ts';

const exec = promisify(execFile);
const TSC = join(ROOT, 'node_modules/typescript/bin/tsc');
const NCC = join(ROOT, 'node_modules/@vercel/ncc/dist/ncc/cli.js');
const DIST = join(ROOT, 'dist');

/**
 * Builds like `npm run build`, but into a temporary directory. ncc names modules by their path relative to the
 * working directory, so the compiled input has to stay at `build/src/action/main.js` for the output to match.
 */
async function freshBuild(): Promise<string> {
  const out = await mkdtemp(join(tmpdir(), 'mytoken-dist-'));
  await exec(NODE, [TSC, '-p', 'tsconfig.build.json'], { cwd: ROOT });
  const args = [
    'build',
    'build/src/action/main.js',
    '-o',
    out,
    '--license',
    'licenses.txt',
    '--quiet',
  ];
  await exec(NODE, [NCC, ...args], { cwd: ROOT });
  return out;
}

describe('dist/', () => {
  test('matches a fresh build of the sources (run `npm run build` when this fails)', async () => {
    const fresh = await freshBuild();
    try {
      const expected = (await readdir(fresh)).sort();
      expect((await readdir(DIST)).sort(), 'files in dist/').toEqual(expected);
      for (const file of expected) {
        const same = (await readFile(join(fresh, file))).equals(await readFile(join(DIST, file)));
        expect(same, `dist/${file} is stale: run \`npm run build\``).toBe(true);
      }
    } finally {
      await rm(fresh, { recursive: true, force: true });
    }
  }, 120_000);

  test('carries the licence of every package it bundles', async () => {
    const bundle = await readFile(join(DIST, 'index.js'), 'utf8');
    const licences = await readFile(join(DIST, 'licenses.txt'), 'utf8');
    const bundled = new Set(
      [...bundle.matchAll(/node_modules\/((?:@[\w.-]+\/)?[\w.-]+)/g)].map((m) => m[1] as string),
    );
    const headers = new Set(licences.split('\n').filter((l) => /^(@[\w.-]+\/)?[\w.-]+$/.test(l)));

    for (const name of ['@actions/core', 'jose', 'libsodium', 'libsodium-wrappers', 'undici']) {
      expect(bundled).toContain(name);
    }
    for (const name of bundled) expect(headers, `licence of ${name}`).toContain(name);
    expect(licences).toMatch(/Permission is hereby granted/);
  });

  test('is an ES module the runner can start', async () => {
    expect(JSON.parse(await readFile(join(DIST, 'package.json'), 'utf8'))).toEqual({
      type: 'module',
    });
  });
});
