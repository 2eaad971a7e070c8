// Optional persistence: the whole dev-server state as one JSON file, written atomically (temp
// file + rename, mode 0600) shortly after changes, so that tokens survive a restart.
import { readFile, rename, unlink, writeFile } from 'node:fs/promises';

import type { JWK } from 'jose';

import { DevServerError } from './errors.ts';
import type { OpState } from './op.ts';
import type { StoreSnapshot } from './store.ts';

const FORMAT = 1;
const WRITE_DELAY_MS = 250;

/** Contents of the state file. */
export interface PersistedState {
  format: number;
  issuer: string;
  mytokenKey: JWK;
  store: StoreSnapshot;
  op: OpState;
}

/** Reads the state file; undefined when it does not exist. */
export async function loadState(file: string): Promise<PersistedState | undefined> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new DevServerError('ERR_DEVSERVER_STATE_FILE', `cannot read state file ${file}`, {
      cause: err,
    });
  }
  let state: PersistedState;
  try {
    state = JSON.parse(text) as PersistedState;
  } catch (err) {
    throw new DevServerError('ERR_DEVSERVER_STATE_FILE', `state file ${file} is not JSON`, {
      cause: err,
    });
  }
  if (state.format !== FORMAT) {
    throw new DevServerError(
      'ERR_DEVSERVER_STATE_FILE',
      `state file ${file} has an unknown format`,
    );
  }
  return state;
}

/** Debounced, atomic writer of the state file. */
export class StateWriter {
  readonly #file: string;
  readonly #snapshot: () => Omit<PersistedState, 'format'>;
  readonly #onError: (err: unknown) => void;
  #timer: NodeJS.Timeout | undefined;
  #writing: Promise<void> = Promise.resolve();

  constructor(
    file: string,
    snapshot: () => Omit<PersistedState, 'format'>,
    onError: (err: unknown) => void,
  ) {
    this.#file = file;
    this.#snapshot = snapshot;
    this.#onError = onError;
  }

  /** Schedules a write (changes within a short window share one write). */
  schedule(): void {
    if (this.#timer) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#enqueue();
    }, WRITE_DELAY_MS);
  }

  /** Writes now (pending scheduled writes included) and waits for it. */
  async flush(): Promise<void> {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#enqueue();
    await this.#writing;
  }

  #enqueue(): void {
    this.#writing = this.#writing.then(() => this.#write()).catch(this.#onError);
  }

  async #write(): Promise<void> {
    const state: PersistedState = { format: FORMAT, ...this.#snapshot() };
    const tmp = `${this.#file}.${process.pid}.tmp`;
    try {
      // A leftover temp file would keep its old mode; the new one is created 0600.
      await unlink(tmp).catch(() => {});
      await writeFile(tmp, JSON.stringify(state), { mode: 0o600 });
      await rename(tmp, this.#file);
    } catch (err) {
      await unlink(tmp).catch(() => {});
      throw new DevServerError(
        'ERR_DEVSERVER_STATE_FILE',
        `cannot write state file ${this.#file}`,
        {
          cause: err,
        },
      );
    }
  }
}
