// Storage adapter for oidc-provider: a plain Map that can be written to the state file, so that
// OP refresh tokens survive a dev-server restart together with the mytokens that hold them.

type Payload = Record<string, unknown>;

interface Entry {
  payload: Payload;
  /** Epoch milliseconds; absent = no expiry. */
  expiresAt?: number;
}

/** Serialised adapter contents. */
export type OpStoreSnapshot = [string, Entry][];

/** Shared storage of all oidc-provider models of one dev server. */
export class OpStore {
  readonly entries = new Map<string, Entry>();
  readonly #onChange: () => void;

  constructor(onChange: () => void, snapshot?: OpStoreSnapshot) {
    this.#onChange = onChange;
    for (const [k, v] of snapshot ?? []) this.entries.set(k, v);
  }

  snapshot(): OpStoreSnapshot {
    this.sweep();
    return [...this.entries];
  }

  get(key: string): Payload | undefined {
    const entry = this.entries.get(key);
    if (!entry) return undefined;
    if (entry.expiresAt !== undefined && entry.expiresAt <= Date.now()) {
      this.entries.delete(key);
      return undefined;
    }
    return entry.payload;
  }

  set(key: string, payload: Payload, expiresIn: number | undefined): void {
    const entry: Entry = { payload };
    if (expiresIn) entry.expiresAt = Date.now() + expiresIn * 1000;
    this.entries.set(key, entry);
    this.#onChange();
  }

  delete(key: string): void {
    if (this.entries.delete(key)) this.#onChange();
  }

  changed(): void {
    this.#onChange();
  }

  /** Removes expired entries. */
  sweep(): void {
    const now = Date.now();
    for (const [k, v] of this.entries) {
      if (v.expiresAt !== undefined && v.expiresAt <= now) this.entries.delete(k);
    }
  }

  /** Adapter factory in the shape oidc-provider expects (`adapter: (name) => instance`). */
  factory(): (model: string) => ModelAdapter {
    return (model: string) => new ModelAdapter(model, this);
  }
}

/** oidc-provider adapter interface for one model. */
export class ModelAdapter {
  readonly #model: string;
  readonly #store: OpStore;

  constructor(model: string, store: OpStore) {
    this.#model = model;
    this.#store = store;
  }

  #key(id: string): string {
    return `${this.#model}:${id}`;
  }

  async upsert(id: string, payload: Payload, expiresIn?: number): Promise<void> {
    this.#store.set(this.#key(id), payload, expiresIn);
    if (typeof payload.uid === 'string')
      this.#store.set(this.#key(`uid:${payload.uid}`), { id }, expiresIn);
    if (typeof payload.userCode === 'string') {
      this.#store.set(this.#key(`userCode:${payload.userCode}`), { id }, expiresIn);
    }
  }

  async find(id: string): Promise<Payload | undefined> {
    return this.#store.get(this.#key(id));
  }

  async findByUid(uid: string): Promise<Payload | undefined> {
    const ref = this.#store.get(this.#key(`uid:${uid}`));
    return typeof ref?.id === 'string' ? this.find(ref.id) : undefined;
  }

  async findByUserCode(userCode: string): Promise<Payload | undefined> {
    const ref = this.#store.get(this.#key(`userCode:${userCode}`));
    return typeof ref?.id === 'string' ? this.find(ref.id) : undefined;
  }

  async consume(id: string): Promise<void> {
    const payload = this.#store.get(this.#key(id));
    if (!payload) return;
    payload.consumed = Math.floor(Date.now() / 1000);
    this.#store.changed();
  }

  async destroy(id: string): Promise<void> {
    this.#store.delete(this.#key(id));
  }

  async revokeByGrantId(grantId: string): Promise<void> {
    for (const [key, entry] of this.#store.entries) {
      if (entry.payload.grantId === grantId) this.#store.delete(key);
    }
  }
}
