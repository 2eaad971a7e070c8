// Small HTTP helpers for the dev-server tests (plain fetch against loopback).

// Bodies are loosely typed on purpose: the tests assert on their fields.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Json = Record<string, any>;

export interface Answer {
  status: number;
  headers: Headers;
  text: string;
  /** Parsed JSON body, or undefined when the body is not JSON. */
  json: Json | undefined;
}

export async function answer(res: Response): Promise<Answer> {
  const text = await res.text();
  let json: Json | undefined;
  try {
    json = JSON.parse(text) as Json;
  } catch {
    json = undefined;
  }
  return { status: res.status, headers: res.headers, text, json };
}

/** POST with a JSON body. */
export async function postJson(
  url: string,
  body: unknown,
  headers: Record<string, string> = {},
): Promise<Answer> {
  return answer(
    await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...headers },
      body: typeof body === 'string' ? body : JSON.stringify(body),
    }),
  );
}

/** An AT request with the token in the body. */
export function accessToken(server: string, mytoken: string, extra: Record<string, unknown> = {}) {
  return postJson(`${server}/api/v0/token/access`, { grant_type: 'mytoken', mytoken, ...extra });
}

/** Payload of a JWT, without verification. */
export function claimsOf(jwt: string): Json {
  return JSON.parse(Buffer.from(jwt.split('.')[1] ?? '', 'base64url').toString('utf8'));
}
