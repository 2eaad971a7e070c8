// In-memory "database" of the dev mytoken server; serialisable for the optional state file.
import type {
  ProxyCode,
  RefreshTokenEntry,
  ShortTokenEntry,
  TokenEvent,
  TokenRecord,
} from './model.ts';

const MAX_EVENTS_PER_TOKEN = 1000;

/** Serialised form of the store (state file). */
export interface StoreSnapshot {
  tokens: TokenRecord[];
  refreshTokens: [string, RefreshTokenEntry][];
  shortTokens: [string, ShortTokenEntry][];
  codes: [string, ProxyCode][];
  events: [string, TokenEvent[]][];
}

/** Token rows, OP refresh tokens, short tokens, polling/transfer codes and event history. */
export class Store {
  readonly tokens = new Map<string, TokenRecord>();
  readonly byMomId = new Map<string, string>();
  readonly refreshTokens = new Map<string, RefreshTokenEntry>();
  readonly shortTokens = new Map<string, ShortTokenEntry>();
  readonly codes = new Map<string, ProxyCode>();
  readonly events = new Map<string, TokenEvent[]>();

  /** Restores a snapshot written by {@link Store.snapshot}. */
  static fromSnapshot(s: StoreSnapshot): Store {
    const store = new Store();
    for (const rec of s.tokens) store.addToken(rec);
    for (const [k, v] of s.refreshTokens) store.refreshTokens.set(k, v);
    for (const [k, v] of s.shortTokens) store.shortTokens.set(k, v);
    for (const [k, v] of s.codes) store.codes.set(k, v);
    for (const [k, v] of s.events) store.events.set(k, v);
    return store;
  }

  snapshot(): StoreSnapshot {
    return {
      tokens: [...this.tokens.values()],
      refreshTokens: [...this.refreshTokens],
      shortTokens: [...this.shortTokens],
      codes: [...this.codes],
      events: [...this.events],
    };
  }

  addToken(rec: TokenRecord): void {
    this.tokens.set(rec.jti, rec);
    this.byMomId.set(rec.momId, rec.jti);
  }

  byMom(momId: string): TokenRecord | undefined {
    const jti = this.byMomId.get(momId);
    return jti === undefined ? undefined : this.tokens.get(jti);
  }

  /** Appends an event to a token's history (bounded, oldest dropped). */
  addEvent(jti: string, event: TokenEvent): void {
    let list = this.events.get(jti);
    if (!list) {
      list = [];
      this.events.set(jti, list);
    }
    list.push(event);
    if (list.length > MAX_EVENTS_PER_TOKEN) list.splice(0, list.length - MAX_EVENTS_PER_TOKEN);
  }

  /** Direct children of a token (a scan: the dev server holds few tokens). */
  childrenOf(jti: string): TokenRecord[] {
    return [...this.tokens.values()].filter((r) => r.parent === jti);
  }

  /** Whether `jti` lies strictly below `ancestor` in the token tree. */
  isDescendant(jti: string, ancestor: string): boolean {
    let current = this.tokens.get(jti)?.parent;
    for (let depth = 0; current !== undefined && depth < 10_000; depth++) {
      if (current === ancestor) return true;
      current = this.tokens.get(current)?.parent;
    }
    return false;
  }

  /** All tokens below `jti`. */
  descendantsOf(jti: string): TokenRecord[] {
    const out: TokenRecord[] = [];
    const queue = [jti];
    while (queue.length > 0) {
      for (const child of this.childrenOf(queue.shift()!)) {
        out.push(child);
        queue.push(child.jti);
      }
    }
    return out;
  }

  /**
   * Deletes a token (and with `recursive` its sub-tokens), their short tokens and transfer codes.
   * Surviving children of deleted tokens lose their parent link.
   * Also drops the OP refresh tokens no remaining token references and returns them, for
   * revocation at the OP.
   */
  revoke(jti: string, recursive: boolean): string[] {
    const victims = [jti, ...(recursive ? this.descendantsOf(jti).map((r) => r.jti) : [])];
    const rtIds = new Set<string>();
    for (const id of victims) {
      const rec = this.tokens.get(id);
      if (!rec) continue;
      rtIds.add(rec.rtId);
      this.tokens.delete(id);
      this.byMomId.delete(rec.momId);
      this.events.delete(id);
    }
    const gone = new Set(victims);
    // Children of a token revoked alone become roots (the server's parent link is ON DELETE SET
    // NULL), so the revoked token is no longer their ancestor.
    for (const rec of this.tokens.values())
      if (rec.parent && gone.has(rec.parent)) delete rec.parent;
    for (const [short, entry] of this.shortTokens)
      if (gone.has(entry.jti)) this.shortTokens.delete(short);
    for (const [code, entry] of this.codes)
      if (entry.jti && gone.has(entry.jti)) this.codes.delete(code);
    return this.dropUnusedRefreshTokens(rtIds);
  }

  private dropUnusedRefreshTokens(candidates: Set<string>): string[] {
    for (const rec of this.tokens.values()) candidates.delete(rec.rtId);
    const dropped: string[] = [];
    for (const id of candidates) {
      const entry = this.refreshTokens.get(id);
      if (!entry) continue;
      this.refreshTokens.delete(id);
      dropped.push(entry.refreshToken);
    }
    return dropped;
  }

  /** Drops expired codes and short tokens (called periodically). */
  sweep(now: number): void {
    for (const [code, entry] of this.codes) if (entry.expiresAt < now) this.codes.delete(code);
    for (const [short, entry] of this.shortTokens) {
      if (entry.exp !== undefined && entry.exp < now) this.shortTokens.delete(short);
    }
  }
}
