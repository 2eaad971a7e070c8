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
  else for (const id of momIds) checkHistoryTarget(app, rec, id);
  const targets = momIds ? historyTargets(app, rec, momIds) : [rec];
  // Built before the action's own event and rotation are recorded.
  // Newest first; the sort is stable, so events of the same second keep their reversed order.
  const events = targets.flatMap((t) =>
    (app.store.events.get(t.jti) ?? []).map((e) => ({ ...e, mom_id: t.momId })).reverse(),
  );
  events.sort((a, b) => b.time - a.time);
  const event = momIds ? 'tokeninfo_history_other_token' : 'tokeninfo_history';
  return otherAction(app, ctx, auth, event, { events });
}

/**
 * The checks for one `mom_ids` entry, as the server makes them (server tokeninfo/history.go,
 * HandleTokenInfoHistory). Without manage_mytokens:history, "this" and "children" pass unchecked,
 * "children@<id>" is checked as <id>, and the target must be the token itself or below it (else
 * 403 insufficient_capabilities). Then every entry must name a token of the same user (else 403
 * invalid_grant); with manage_mytokens:history the entry is not unwrapped first, so "this",
 * "children" and "children@…" fail that check.
 */
function checkHistoryTarget(app: MytokenApp, rec: TokenRecord, entry: string): void {
  let id = entry;
  if (!hasCapability(rec.capabilities, 'manage_mytokens:history')) {
    if (entry === 'this' || entry === 'children') return;
    if (entry.startsWith('children@')) id = entry.slice('children@'.length);
    const target = app.store.byMom(id);
    if (!target || (target.jti !== rec.jti && !app.store.isDescendant(target.jti, rec.jti))) {
      throw new ApiError(
        403,
        'insufficient_capabilities',
        "The provided token is neither a parent of the token nor does it have the 'manage_mytokens:history' capability",
      );
    }
  }
  if (app.store.byMom(id)?.sub !== rec.sub) {
    throw new ApiError(
      403,
      'invalid_grant',
      'The provided token cannot be used to obtain history for this mom_id',
    );
  }
}

// mom_ids that passed the checks: "this", "children" (all descendants), "children@<mom_id>" or a
// mom_id.
function historyTargets(app: MytokenApp, rec: TokenRecord, momIds: string[]): TokenRecord[] {
  const out = new Map<string, TokenRecord>();
  for (const id of momIds) {
    if (id === 'this') out.set(rec.jti, rec);
    else if (id === 'children') for (const d of app.store.descendantsOf(rec.jti)) out.set(d.jti, d);
    else if (id.startsWith('children@')) {
      const target = app.store.byMom(id.slice('children@'.length));
      for (const d of target ? app.store.descendantsOf(target.jti) : []) out.set(d.jti, d);
    } else {
      const target = app.store.byMom(id);
      if (target) out.set(target.jti, target);
    }
  }
  return [...out.values()];
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
