/**
 * Where the one valid copy of a mytoken lives. The client loads the current token from a store before each use and
 * saves every rotated token there before it returns anything else from that response, so a store's `save` must
 * resolve only once the token is durable. A file, a GitHub secret or a Kubernetes Secret can sit behind it.
 */
export interface TokenStore {
  /** Returns the current token. */
  load(): Promise<string>;
  /** Persists a new token; resolves only once the token would survive a crash of this process. */
  save(token: string): Promise<void>;
  /** Where the token lives, for messages, e.g. `file /var/lib/probe/mytoken`. Never the token. */
  readonly description: string;
}

/** A store that keeps the token in memory only; for tests and for tokens that do not rotate. */
export class MemoryTokenStore implements TokenStore {
  readonly description = 'memory';
  #token: string;
  #saves = 0;

  constructor(token: string) {
    this.#token = token;
  }

  async load(): Promise<string> {
    return this.#token;
  }

  async save(token: string): Promise<void> {
    this.#token = token;
    this.#saves++;
  }

  /** How many rotated tokens were saved. */
  get saves(): number {
    return this.#saves;
  }
}
