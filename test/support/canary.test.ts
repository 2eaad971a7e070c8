import { mkdtemp, mkdir, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { Canaries, assertNoCanaries, findCanaries, readTree, withoutMaskLines } from './canary.ts';

// Shaped like the dev server's tokens: three base64url segments, the last two long.
const JWT = `eyJhbGciOiJFUzUxMiJ9.${'eyJzdWIiOiJjYW5hcnkiLCJqdGkiOiIxMjM0NTY3ODkwIn0'.repeat(2)}.${'c2lnbmF0dXJl'.repeat(6)}`;
const [, PAYLOAD, SIGNATURE] = JWT.split('.') as [string, string, string];
const PLAIN = 'ghp_canaryPlain0000000000000000000000000';

describe('Canaries', () => {
  test('finds a token whole, its JWT payload or signature alone, and its base64 form', () => {
    const canaries = new Canaries().add('mytoken', JWT).add('github token', PLAIN);
    const findings = findCanaries(canaries, {
      whole: `line one\nBearer ${JWT}`,
      payload: `claims ${PAYLOAD}`,
      signature: `sig=${SIGNATURE}`,
      base64: Buffer.from(PLAIN).toString('base64'),
      clean: 'eyJhbGciOiJFUzUxMiJ9 alone is shared by every token',
    });

    expect(findings).toEqual([
      { surface: 'whole', canary: 'mytoken', form: 'whole', line: 2 },
      { surface: 'whole', canary: 'mytoken', form: 'jwt payload', line: 2 },
      { surface: 'whole', canary: 'mytoken', form: 'jwt signature', line: 2 },
      { surface: 'payload', canary: 'mytoken', form: 'jwt payload', line: 1 },
      { surface: 'signature', canary: 'mytoken', form: 'jwt signature', line: 1 },
      { surface: 'base64', canary: 'github token', form: 'base64', line: 1 },
    ]);
  });

  test('takes every ::add-mask:: value, unescaped and trimmed, and ignores short ones', () => {
    const stdout = `::add-mask::${PLAIN}%0A\n::add-mask::short\nplain line\n`;
    const canaries = new Canaries().addMasked(stdout);

    expect(canaries.size).toBe(1);
    expect(canaries.has(PLAIN)).toBe(true);
    expect(withoutMaskLines(stdout)).not.toContain(PLAIN);
  });

  test('reports leaks by label and line, never by value', () => {
    const canaries = new Canaries().add('github token', PLAIN);
    const check = () => assertNoCanaries(canaries, { stderr: `ok\n${PLAIN}` });

    expect(check).toThrow('secret leaked: github token (whole) in stderr, line 2');
    expect(check).not.toThrow(PLAIN);
  });

  test('refuses to pass with no canaries at all', () => {
    expect(() => assertNoCanaries(new Canaries(), { stdout: '' })).toThrow(/no canaries/);
  });

  test('except() leaves one value out, for the surface meant to hold it', () => {
    const canaries = new Canaries().add('access token', JWT).add('github token', PLAIN);
    expect(() => assertNoCanaries(canaries.except(JWT), { output: JWT })).not.toThrow();
    expect(() => assertNoCanaries(canaries.except(JWT), { output: PLAIN })).toThrow();
  });
});

describe('readTree', () => {
  test('reads every file below a folder, skips the excluded ones and reports links', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'canary-tree-'));
    await mkdir(join(dir, 'temp'));
    await writeFile(join(dir, 'temp', 'leak.json'), PLAIN);
    await writeFile(join(dir, 'output'), 'intended');
    await symlink('/etc/hostname', join(dir, 'link'));
    const tree = await readTree(dir, { except: [join(dir, 'output')] });

    expect(tree).toEqual({ 'file temp/leak.json': PLAIN, 'file link': '(symbolic link)' });
  });
});
