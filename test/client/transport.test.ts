import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { createTransport } from '../../src/client/http.ts';
import { MytokenError } from '../../src/client/errors.ts';

let server: Server | undefined;

async function serve(handler: Parameters<typeof createServer>[1]): Promise<string> {
  server = createServer(handler);
  await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

afterEach(async () => {
  server?.closeAllConnections();
  await new Promise((resolve) => server?.close(resolve) ?? resolve(undefined));
  server = undefined;
});

async function failure(promise: Promise<unknown>): Promise<MytokenError> {
  const error = await promise.catch((e: unknown) => e);
  expect(error).toBeInstanceOf(MytokenError);
  return error as MytokenError;
}

describe('transport', () => {
  it('returns status, headers and text of an answer', async () => {
    const url = await serve((_req, res) => res.writeHead(201, { 'x-a': '1' }).end('{"ok":true}'));
    const res = await createTransport().send({ method: 'GET', url, operation: 'test' });
    expect(res).toMatchObject({ status: 201, text: '{"ok":true}' });
    expect(res.headers['x-a']).toBe('1');
  });

  it('reports a refused connection as a network error that never reached the server', async () => {
    const url = await serve(() => undefined);
    await new Promise((resolve) => server!.close(resolve));
    const error = await failure(createTransport().send({ method: 'POST', url, operation: 'op' }));
    expect(error.code).toBe('ERR_MYTOKEN_NETWORK');
    expect(error.mayHaveReachedServer).toBe(false);
    expect(error.message).toMatch(/^op: cannot reach 127\.0\.0\.1:\d+ \(ECONNREFUSED\)$/);
  });

  it('reports a dropped connection as one that may have reached the server', async () => {
    const url = await serve((req) => req.socket.destroy());
    const error = await failure(createTransport().send({ method: 'POST', url, operation: 'op' }));
    expect(error.code).toBe('ERR_MYTOKEN_NETWORK');
    expect(error.mayHaveReachedServer).toBe(true);
  });

  it('times out a server that never answers', async () => {
    const url = await serve(() => undefined);
    const transport = createTransport({ timeoutMs: 200 });
    const error = await failure(transport.send({ method: 'POST', url, operation: 'op' }));
    expect(error.code).toBe('ERR_MYTOKEN_TIMEOUT');
    expect(error.mayHaveReachedServer).toBe(true);
  });

  it('times out a body that trickles too slowly', async () => {
    const url = await serve((_req, res) => {
      res.writeHead(200);
      res.write('{');
    });
    const transport = createTransport({ timeoutMs: 200 });
    const error = await failure(transport.send({ method: 'GET', url, operation: 'op' }));
    expect(error.code).toBe('ERR_MYTOKEN_TIMEOUT');
  });

  it('refuses an answer larger than the bound', async () => {
    const url = await serve((_req, res) => res.end('x'.repeat(5000)));
    const transport = createTransport({ maxResponseBytes: 1000 });
    const error = await failure(transport.send({ method: 'GET', url, operation: 'op' }));
    expect(error.code).toBe('ERR_MYTOKEN_MALFORMED_RESPONSE');
    expect(error.message).toBe('op: response larger than 1000 bytes');
  });
});
