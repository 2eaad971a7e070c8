/**
 * A token store backed by one file, written so that a crash at any instant leaves either the old or the new token
 * in place, never a truncated file: write a temporary file, fsync it, rename it over the target, fsync the folder.
 * The file is created 0600, never followed through a symbolic link, and refused when others can read it.
 */
import { constants, promises as fs } from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { MytokenError } from './errors.ts';
import { isTokenString } from './responses.ts';
import type { TokenStore } from './store.ts';

const READ_FLAGS = constants.O_RDONLY | constants.O_NOFOLLOW;
const WRITE_FLAGS =
  constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;

export class FileTokenStore implements TokenStore {
  readonly path: string;
  readonly description: string;

  constructor(file: string) {
    this.path = path.resolve(file);
    this.description = `file ${this.path}`;
  }

  async load(): Promise<string> {
    await this.#recoverInterruptedSave();
    const handle = await fs.open(this.path, READ_FLAGS).catch((error: unknown) => {
      throw storeError(`cannot open token file ${this.path} (${codeOf(error)})`, error);
    });
    try {
      const stat = await handle.stat();
      if (!stat.isFile()) throw storeError(`token file ${this.path} is not a regular file`);
      if ((stat.mode & 0o077) !== 0) {
        throw storeError(`token file ${this.path} is readable by others: run chmod 600 on it`);
      }
      const token = (await handle.readFile('utf8')).trim();
      if (!isTokenString(token)) throw storeError(`token file ${this.path} holds no token`);
      return token;
    } finally {
      await handle.close();
    }
  }

  async save(token: string): Promise<void> {
    if (!isTokenString(token)) throw storeError('refusing to save a value that is not a token');
    const dir = path.dirname(this.path);
    const temp = path.join(
      dir,
      `.${path.basename(this.path)}.${randomBytes(6).toString('hex')}.tmp`,
    );
    try {
      const handle = await fs.open(temp, WRITE_FLAGS, 0o600);
      try {
        await handle.writeFile(`${token}\n`);
        await handle.sync();
      } finally {
        await handle.close();
      }
      await fs.rename(temp, this.path);
      await syncDirectory(dir);
    } catch (error) {
      await fs.rm(temp, { force: true }).catch(() => undefined);
      throw storeError(`cannot write token file ${this.path} (${codeOf(error)})`, error);
    }
  }

  /**
   * Finishes a `save` that a crash interrupted. Saves run one at a time and only ever carry a token newer than the
   * file's, so a temporary file written to its end (the trailing newline) holds the newest token and is moved into
   * place; a partial one never held the only copy of anything and is removed.
   */
  async #recoverInterruptedSave(): Promise<void> {
    const dir = path.dirname(this.path);
    const prefix = `.${path.basename(this.path)}.`;
    const names = await fs.readdir(dir).catch(() => [] as string[]);
    const temps = names.filter((n) => n.startsWith(prefix) && n.endsWith('.tmp'));
    let newest: { file: string; mtime: number } | undefined;
    for (const name of temps) {
      const file = path.join(dir, name);
      const complete = await isCompleteTemp(file);
      const mtime = complete ? (await fs.lstat(file)).mtimeMs : -1;
      if (complete && (newest === undefined || mtime > newest.mtime)) {
        if (newest !== undefined) await fs.rm(newest.file, { force: true });
        newest = { file, mtime };
      } else {
        await fs.rm(file, { force: true });
      }
    }
    if (newest === undefined) return;
    await fs.rename(newest.file, this.path);
    await syncDirectory(dir);
  }
}

async function isCompleteTemp(file: string): Promise<boolean> {
  try {
    const stat = await fs.lstat(file);
    if (!stat.isFile() || (stat.mode & 0o077) !== 0) return false;
    const text = await fs.readFile(file, 'utf8');
    return text.endsWith('\n') && isTokenString(text.trim());
  } catch {
    return false;
  }
}

async function syncDirectory(dir: string): Promise<void> {
  const handle = await fs.open(dir, constants.O_RDONLY | constants.O_DIRECTORY);
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

function storeError(message: string, cause?: unknown): MytokenError {
  return new MytokenError('ERR_MYTOKEN_TOKEN_STORE', message, { operation: 'token_store', cause });
}

function codeOf(error: unknown): string {
  const code = (error as { code?: unknown } | undefined)?.code;
  return typeof code === 'string' ? code : 'error';
}
