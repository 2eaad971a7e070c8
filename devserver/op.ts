// The dev OpenID provider: oidc-provider mounted under /oidc with one confidential client (the
// mytoken server) and one dev user who logs in and consents without any UI.
import { randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';

import { exportJWK, generateKeyPair, type JWK } from 'jose';
import Provider from 'oidc-provider';

import { OpStore, type OpStoreSnapshot } from './op-adapter.ts';
import type { Logger } from './log.ts';

/** Path under which the OP is mounted. */
export const OP_MOUNT = '/oidc';
/** Scopes the dev OP supports (and grants the mytoken server). */
export const OP_SCOPES = ['openid', 'profile', 'email', 'offline_access'];
/** The dev user's account id, the `sub` of every OP token. */
export const DEV_ACCOUNT = 'dev-user';
/** Client id of the mytoken server at the OP. */
export const OP_CLIENT_ID = 'mytoken-dev-server';
/**
 * A dev-only machine client that may use the client_credentials grant and gets JWT ATs for the
 * demo resource: what blackbox_exporter's `oauth2` module needs, for the benchmarks. Its secret is
 * fixed and public on purpose; it exists only on this loopback dev server.
 */
export const OP_SERVICE_CLIENT = { id: 'dev-service', secret: 'dev-service-secret' } as const;

const SIGNING_ALG = 'ES256';
const DAY = 86400;
const YEAR = 365 * DAY;

/** OP state kept in the state file. */
export interface OpState {
  jwk: JWK;
  cookieKeys: string[];
  clientSecret: string;
  store: OpStoreSnapshot;
}

export interface DevOpOptions {
  /** `http://HOST:PORT/oidc` */
  issuer: string;
  /** Default resource indicator: the demo resource URL. */
  resourceUrl: string;
  /** The mytoken server's OIDC callback. */
  redirectUri: string;
  atLifetime: number;
  state?: OpState;
  onChange: () => void;
  onRefreshGrant: () => void;
  onClientCredentialsGrant: () => void;
  log: Logger;
}

/** The OP and what the mytoken server needs to talk to it. */
export class DevOp {
  readonly issuer: string;
  readonly clientSecret: string;
  /** Lifetime of new access tokens in seconds; may be changed at runtime. */
  atLifetime: number;
  readonly #provider: Provider;
  readonly #callback: (req: IncomingMessage, res: ServerResponse) => void;
  readonly #store: OpStore;
  readonly #jwk: JWK;
  readonly #cookieKeys: string[];
  readonly #log: Logger;

  private constructor(opts: DevOpOptions, jwk: JWK) {
    this.issuer = opts.issuer;
    this.atLifetime = opts.atLifetime;
    this.clientSecret = opts.state?.clientSecret ?? randomBytes(24).toString('base64url');
    this.#jwk = jwk;
    this.#cookieKeys = opts.state?.cookieKeys ?? [randomBytes(24).toString('base64url')];
    this.#store = new OpStore(opts.onChange, opts.state?.store);
    this.#log = opts.log;
    this.#provider = new Provider(opts.issuer, this.#configuration(opts));
    this.#provider.on('grant.success', (ctx) => {
      const type = grantTypeOf(ctx);
      if (type === 'refresh_token') opts.onRefreshGrant();
      if (type === 'client_credentials') opts.onClientCredentialsGrant();
    });
    this.#provider.on('server_error', (_ctx, err) =>
      this.#log('OP server error', { err: String(err) }),
    );
    // A listener of its own keeps Koa from printing errors to the console.
    this.#provider.on('error', (err) => this.#log('OP error', { err: String(err) }));
    this.#callback = this.#provider.callback();
  }

  /** Creates the OP, generating a signing key unless the state has one. */
  static async create(opts: DevOpOptions): Promise<DevOp> {
    let jwk = opts.state?.jwk;
    if (!jwk) {
      const pair = await generateKeyPair(SIGNING_ALG, { extractable: true });
      jwk = {
        ...(await exportJWK(pair.privateKey)),
        kid: randomBytes(8).toString('base64url'),
        alg: SIGNING_ALG,
        use: 'sig',
      };
    }
    return new DevOp(opts, jwk);
  }

  /** State to persist. */
  snapshot(): OpState {
    return {
      jwk: this.#jwk,
      cookieKeys: this.#cookieKeys,
      clientSecret: this.clientSecret,
      store: this.#store.snapshot(),
    };
  }

  /** Drops expired OP artifacts. */
  sweep(): void {
    this.#store.sweep();
  }

  /** Handles a request whose path starts with {@link OP_MOUNT}. */
  handle(req: IncomingMessage, res: ServerResponse, path: string): void {
    if (path.startsWith(`${OP_MOUNT}/interaction/`)) {
      this.#interact(req, res).catch((err: unknown) => {
        this.#log('OP interaction failed', { err: String(err) });
        if (!res.headersSent) res.writeHead(400, { 'content-type': 'text/plain' });
        res.end('interaction failed');
      });
      return;
    }
    // Mounted like a sub-application: the provider sees paths relative to its issuer and derives
    // its mount path from originalUrl.
    (req as IncomingMessage & { originalUrl?: string }).originalUrl = req.url;
    req.url = (req.url ?? '/').slice(OP_MOUNT.length) || '/';
    this.#callback(req, res);
  }

  // The dev user logs in and consents to everything asked for, in one step.
  async #interact(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const { params } = await this.#provider.interactionDetails(req, res);
    const scope = typeof params.scope === 'string' ? params.scope : 'openid';
    const grant = new this.#provider.Grant({
      accountId: DEV_ACCOUNT,
      clientId: String(params.client_id),
    });
    grant.addOIDCScope(scope);
    for (const resource of resourcesOf(params.resource)) grant.addResourceScope(resource, scope);
    const grantId = await grant.save();
    await this.#provider.interactionFinished(
      req,
      res,
      { login: { accountId: DEV_ACCOUNT }, consent: { grantId } },
      { mergeWithLastSubmission: false },
    );
  }

  #configuration(opts: DevOpOptions): Record<string, unknown> {
    const resourceUrl = opts.resourceUrl;
    return {
      adapter: this.#store.factory(),
      clients: [
        {
          client_id: OP_CLIENT_ID,
          client_secret: this.clientSecret,
          redirect_uris: [opts.redirectUri],
          grant_types: ['authorization_code', 'refresh_token'],
          response_types: ['code'],
          token_endpoint_auth_method: 'client_secret_basic',
        },
        {
          client_id: OP_SERVICE_CLIENT.id,
          client_secret: OP_SERVICE_CLIENT.secret,
          redirect_uris: [],
          grant_types: ['client_credentials'],
          response_types: [],
          token_endpoint_auth_method: 'client_secret_basic',
        },
      ],
      clientDefaults: { id_token_signed_response_alg: SIGNING_ALG },
      jwks: { keys: [this.#jwk] },
      cookies: { keys: this.#cookieKeys },
      scopes: OP_SCOPES,
      claims: {
        openid: ['sub'],
        profile: ['name', 'preferred_username'],
        email: ['email', 'email_verified'],
      },
      findAccount: async (_ctx: unknown, id: string) => ({
        accountId: id,
        claims: async () => ({
          sub: id,
          name: 'Dev User',
          preferred_username: 'dev',
          email: 'dev@localhost',
          email_verified: true,
        }),
      }),
      features: {
        devInteractions: { enabled: false },
        clientCredentials: { enabled: true },
        revocation: { enabled: true, allowedPolicy: async () => true },
        resourceIndicators: {
          enabled: true,
          defaultResource: async (_ctx: unknown, _client: unknown, oneOf?: string[]) =>
            oneOf ? (oneOf.includes(resourceUrl) ? resourceUrl : oneOf[0]) : resourceUrl,
          useGrantedResource: async () => true,
          getResourceServerInfo: async (_ctx: unknown, resource: string) => ({
            scope: OP_SCOPES.join(' '),
            audience: resource,
            accessTokenTTL: this.atLifetime,
            accessTokenFormat: 'jwt',
            jwt: { sign: { alg: SIGNING_ALG } },
          }),
        },
      },
      interactions: {
        url: async (_ctx: unknown, interaction: { uid: string }) =>
          `${OP_MOUNT}/interaction/${interaction.uid}`,
      },
      ttl: {
        AccessToken: () => this.atLifetime,
        AuthorizationCode: 60,
        ClientCredentials: 600,
        DeviceCode: 600,
        BackchannelAuthenticationRequest: 600,
        Grant: YEAR,
        IdToken: 3600,
        Interaction: 600,
        RefreshToken: YEAR,
        Session: DAY,
      },
      rotateRefreshToken: false,
      clientBasedCORS: () => false,
      renderError: async (ctx: { type: string; body: string }, out: Record<string, string>) => {
        ctx.type = 'html';
        ctx.body = `<!DOCTYPE html><html><head><title>OP error</title></head><body><p>${escapeHtml(
          out.error ?? 'error',
        )}: ${escapeHtml(out.error_description ?? '')}</p></body></html>`;
      },
    };
  }
}

function grantTypeOf(ctx: unknown): string | undefined {
  const params = (ctx as { oidc?: { params?: { grant_type?: unknown } } }).oidc?.params;
  return typeof params?.grant_type === 'string' ? params.grant_type : undefined;
}

function resourcesOf(value: unknown): string[] {
  if (typeof value === 'string') return [value];
  if (Array.isArray(value)) return value.filter((v): v is string => typeof v === 'string');
  return [];
}

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
