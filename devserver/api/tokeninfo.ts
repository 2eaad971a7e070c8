// POST /api/v0/tokeninfo (§6).
import { hasCapability } from '../capabilities.ts';
import { ApiError, badRequest } from '../errors.ts';
import { json, type Reply, type RequestContext } from '../http.ts';
import type { TokenRecord } from '../model.ts';
import { countUse, withUsage } from '../restrictions.ts';
import {
  authenticate,
  otherClause,
  bodyToken,
  recordEvent,
  requireCapability,
  type Authenticated,
  type MytokenApp,
} from './app.ts';
import { parseJsonBody } from './body.ts';
import { rotate } from './issue.ts';

const ACTIONS = ['introspect', 'event_history', 'subtokens', 'list_mytokens', 'notifications'];

/** The tokeninfo endpoint (JSON body regardless of Content-Type). */
export async function tokeninfo(app: MytokenApp, ctx: RequestContext, raw: Buffer): Promise<Reply> {
  const body = parseJsonBody(raw);
  const action = body.action ?? 'introspect';
  if (typeof action !== 'string' || !ACTIONS.includes(action)) {
    throw badRequest(`value '${String(action)}' not valid for TokeninfoAction`);
  }
  const token = bodyToken(app, body.mytoken, 'mytoken');
  const momIds = parseMomIds(body.mom_ids);
  const auth = await authenticate(app, ctx, token);

  switch (action) {
    case 'introspect':
      return introspect(app, ctx, auth);
    case 'event_history':
      return eventHistory(app, ctx, auth, momIds);
    case 'subtokens':
      requireCapability(auth.rec, 'tokeninfo:subtokens');
      return otherAction(app, ctx, auth, 'tokeninfo_subtokens', {
        mytokens: tree(app, auth.rec),
      });
    case 'list_mytokens':
      requireCapability(auth.rec, 'manage_mytokens:list');
      return otherAction(app, ctx, auth, 'tokeninfo_list_mytokens', {
        mytokens: roots(app, auth.rec.sub).map((r) => tree(app, r)),
      });
    default:
      throw new ApiError(
        501,
        'not_yet_implemented',
        'notifications are not supported by the dev server',
      );
  }
}

function parseMomIds(value: unknown): string[] | undefined {
  if (value === undefined || value === null) return undefined;
  if (!Array.isArray(value) || value.some((v) => typeof v !== 'string')) {
    throw badRequest("field 'mom_ids' must be an array of strings");
  }
  return value.length > 0 ? (value as string[]) : undefined;
}

// Introspection checks no restrictions and never rotates.
function introspect(app: MytokenApp, ctx: RequestContext, auth: Authenticated): Reply {
  const { rec, claims, presented } = auth;
  requireCapability(rec, 'tokeninfo:introspect');
  recordEvent(app, rec.jti, ctx, 'tokeninfo_introspect');
  app.changed();
  const token: Record<string, unknown> = { ...claims };
  if (claims.restrictions?.length) token.restrictions = withUsage(rec, claims.restrictions);
  return json(200, {
    valid: true,
    token_type: presented.short ? 'short_token' : 'token',
    token,
    mom_id: rec.momId,
  });
}

/**
 * Restrictions are checked and counted for the "other" actions; like the real server, they log
 * their event and rotate `on_other` only for tokens that have restriction clauses (§6 quirk).
 */
async function otherAction(
  app: MytokenApp,
  ctx: RequestContext,
  auth: Authenticated,
  event: string,
  body: Record<string, unknown>,
): Promise<Reply> {
  const { rec } = auth;
  const clause = otherClause(rec, ctx.ip);
  if (!clause) return json(200, body);

  countUse(rec, clause, 'other');
  recordEvent(app, rec.jti, ctx, event);
  app.changed();
  if (!rec.rotation?.on_other) return json(200, body);
  const update = await rotate(app, auth, ctx);
  return json(200, { ...body, token_update: update.response }, update.headers);
}

async function eventHistory(
  app: MytokenApp,
  ctx: RequestContext,
  auth: Authenticated,
  momIds: string[] | undefined,
): Promise<Reply> {
  const { rec } = auth;
  if (!momIds) requireCapability(rec, 'tokeninfo:history');
  const targets = momIds ? historyTargets(app, rec, momIds) : [rec];
  // Built before the action's own event and rotation are recorded.
  // Newest first; the sort is stable, so events of the same second keep their reversed order.
  const events = targets.flatMap((t) =>
    (app.store.events.get(t.jti) ?? []).map((e) => ({ ...e, mom_id: t.momId })).reverse(),
  );
  events.sort((a, b) => b.time - a.time);
  return otherAction(app, ctx, auth, 'tokeninfo_history', { events });
}

// mom_ids: "this", "children", "children@<mom_id>" or a mom_id; each target must be a descendant
// of the token or the token needs manage_mytokens:history ("this"/"children" skip the check, as
// on the real server).
function historyTargets(app: MytokenApp, rec: TokenRecord, momIds: string[]): TokenRecord[] {
  const mayAll = hasCapability(rec.capabilities, 'manage_mytokens:history');
  const out = new Map<string, TokenRecord>();
  for (const id of momIds) {
    if (id === 'this') out.set(rec.jti, rec);
    else if (id === 'children') for (const d of app.store.descendantsOf(rec.jti)) out.set(d.jti, d);
    else {
      const childrenOf = id.startsWith('children@');
      const target = app.store.byMom(childrenOf ? id.slice('children@'.length) : id);
      if (!target) continue;
      checkManaged(app, rec, target, mayAll);
      const list = childrenOf ? app.store.descendantsOf(target.jti) : [target];
      for (const t of list) out.set(t.jti, t);
    }
  }
  return [...out.values()];
}

function checkManaged(
  app: MytokenApp,
  rec: TokenRecord,
  target: TokenRecord,
  mayAll: boolean,
): void {
  if (target.sub !== rec.sub) {
    throw new ApiError(403, 'invalid_grant', 'The provided token cannot be used for this mom_id');
  }
  if (target.jti === rec.jti || mayAll || app.store.isDescendant(target.jti, rec.jti)) return;
  throw new ApiError(
    403,
    'insufficient_capabilities',
    'The provided token is neither a parent of the token nor does it have the required capability',
  );
}

function roots(app: MytokenApp, sub: string): TokenRecord[] {
  return [...app.store.tokens.values()].filter(
    (r) => r.sub === sub && (r.parent === undefined || !app.store.tokens.has(r.parent)),
  );
}

function tree(app: MytokenApp, rec: TokenRecord): Record<string, unknown> {
  const entry: Record<string, unknown> = { mom_id: rec.momId };
  if (rec.name) entry.name = rec.name;
  entry.created = rec.created;
  if (rec.exp) entry.expires_at = rec.exp;
  if (rec.ip) entry.ip = rec.ip;
  const children = app.store.childrenOf(rec.jti).map((c) => tree(app, c));
  return children.length > 0 ? { token: entry, children } : { token: entry };
}
