import { mkdtemp, readFile, readdir, stat, symlink, writeFile, chmod } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { beforeEach, describe, expect, it } from 'vitest';
import { FileTokenStore } from '../../src/client/file-store.ts';
import { MytokenError } from '../../src/client/errors.ts';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'mt-store-'));
});

describe('FileTokenStore', () => {
  it('saves with mode 0600 and loads what it saved', async () => {
    const store = new FileTokenStore(path.join(dir, 'token'));
    await store.save('canary-token-AAAA');
    expect((await stat(path.join(dir, 'token'))).mode & 0o777).toBe(0o600);
    expect(await store.load()).toBe('canary-token-AAAA');
  });

  it('trims a trailing newline written by hand', async () => {
    const file = path.join(dir, 'token');
    await writeFile(file, 'hand-written-token\n', { mode: 0o600 });
    expect(await new FileTokenStore(file).load()).toBe('hand-written-token');
  });

  it('refuses a file that others can read, and names the fix', async () => {
    const file = path.join(dir, 'token');
    await writeFile(file, 'abc', { mode: 0o644 });
    await chmod(file, 0o644);
    const error = await new FileTokenStore(file).load().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(MytokenError);
    expect((error as MytokenError).code).toBe('ERR_MYTOKEN_TOKEN_STORE');
    expect((error as MytokenError).message).toMatch(/readable by others: run chmod 600/);
  });

  it('never follows a symbolic link when loading', async () => {
    const target = path.join(dir, 'elsewhere');
    await writeFile(target, 'secret', { mode: 0o600 });
    await symlink(target, path.join(dir, 'token'));
    const error = await new FileTokenStore(path.join(dir, 'token')).load().catch((e: unknown) => e);
    expect((error as MytokenError).code).toBe('ERR_MYTOKEN_TOKEN_STORE');
  });

  it('replaces a symbolic link on save instead of writing through it', async () => {
    const target = path.join(dir, 'elsewhere');
    await writeFile(target, 'untouched', { mode: 0o600 });
    await symlink(target, path.join(dir, 'token'));
    await new FileTokenStore(path.join(dir, 'token')).save('new-token');
    expect(await readFile(target, 'utf8')).toBe('untouched');
    expect(await readFile(path.join(dir, 'token'), 'utf8')).toBe('new-token\n');
  });

  it('refuses to save a value that is not a token', async () => {
    const store = new FileTokenStore(path.join(dir, 'token'));
    await expect(store.save('two\nlines')).rejects.toMatchObject({
      code: 'ERR_MYTOKEN_TOKEN_STORE',
    });
  });

  it('completes a save interrupted after the temporary file was written', async () => {
    const file = path.join(dir, 'token');
    await writeFile(file, 'old-token\n', { mode: 0o600 });
    await writeFile(path.join(dir, '.token.abcdef.tmp'), 'new-token\n', { mode: 0o600 });
    expect(await new FileTokenStore(file).load()).toBe('new-token');
    expect(await readdir(dir)).toEqual(['token']);
  });

  it('discards a temporary file that was cut off half-way', async () => {
    const file = path.join(dir, 'token');
    await writeFile(file, 'old-token\n', { mode: 0o600 });
    await writeFile(path.join(dir, '.token.abcdef.tmp'), 'new-to', { mode: 0o600 });
    expect(await new FileTokenStore(file).load()).toBe('old-token');
    expect(await readdir(dir)).toEqual(['token']);
  });
});
