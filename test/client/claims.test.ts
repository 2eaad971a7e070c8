import { SignJWT, generateKeyPair } from 'jose';
import { describe, expect, it } from 'vitest';
import {
  hasCapability,
  mayRotate,
  readMytokenClaims,
  rotatesOnAccessToken,
} from '../../src/client/claims.ts';

async function jwt(claims: Record<string, unknown>, typ = 'MT+JWT'): Promise<string> {
  const { privateKey } = await generateKeyPair('ES512');
  return new SignJWT(claims).setProtectedHeader({ alg: 'ES512', typ }).sign(privateKey);
}

describe('readMytokenClaims', () => {
  it('reads expiry, rotation and capabilities from a JWT mytoken', async () => {
    const token = await jwt({
      token_type: 'mytoken',
      iss: 'https://mt.example',
      jti: 'j1',
      seq_no: 4,
      exp: 2_000_000_000,
      capabilities: ['AT', 'tokeninfo'],
      rotation: { on_AT: true, lifetime: 600, auto_revoke: true },
    });
    const info = readMytokenClaims(token);
    expect(info).toMatchObject({
      kind: 'jwt',
      seqNo: 4,
      capabilities: ['AT', 'tokeninfo'],
      rotation: { onAT: true, onOther: false, lifetime: 600, autoRevoke: true },
    });
    expect(info.kind === 'jwt' && info.expiresAt?.getTime()).toBe(2_000_000_000_000);
    expect(rotatesOnAccessToken(info)).toBe(true);
  });

  it('treats a short token as opaque, whose rotation cannot be known', () => {
    const info = readMytokenClaims(
      'abcdefghijklmnopqrstuvwxyzABCDEFGHJKMNOPQRSTUVWXYZabcdefghijklmn',
    );
    expect(info).toEqual({ kind: 'opaque' });
    expect(rotatesOnAccessToken(info)).toBeUndefined();
    expect(mayRotate(info)).toBeUndefined();
  });

  it('treats a JWT that is not a mytoken as opaque', async () => {
    expect(readMytokenClaims(await jwt({ sub: 'x' }, 'JWT'))).toEqual({ kind: 'opaque' });
  });

  it('reports a non-rotating token as such', async () => {
    const info = readMytokenClaims(await jwt({ token_type: 'mytoken', capabilities: ['AT'] }));
    expect(rotatesOnAccessToken(info)).toBe(false);
    expect(mayRotate(info)).toBe(false);
  });
});

describe('hasCapability', () => {
  it.each([
    [['tokeninfo'], 'tokeninfo:introspect', true],
    [['tokeninfo:introspect'], 'tokeninfo', false],
    [['AT'], 'AT', true],
    [['ATX'], 'AT', false],
    [['read@settings'], 'read@settings:grants', true],
    [['read@settings'], 'settings:grants', false],
    [['settings'], 'read@settings:grants', true],
  ])('%j grants %s: %s', (held, required, expected) => {
    expect(hasCapability(held, required)).toBe(expected);
  });
});
