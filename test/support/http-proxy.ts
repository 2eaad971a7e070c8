/**
 * A small forward proxy on 127.0.0.1 for proving that clients honour `HTTPS_PROXY` / `HTTP_PROXY`:
 * it tunnels `CONNECT host:port` (what clients do for https targets, and some for http ones) and
 * relays absolute-form plain-HTTP requests (`GET http://host/path`), adding `Via: 1.1 test-proxy`.
 * Every relay is recorded. It refuses any target that is not loopback, so a misrouted test can
 * never reach the network.
 *
 * @example
 * const proxy = await startHttpProxy();
 * // run the client with HTTPS_PROXY=proxy.url, then:
 * expect(proxy.relayed).toBeGreaterThan(0);
 * await proxy.close();
 */

import { once } from 'node:events';
import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';

/** One relayed (or refused) request. */
export interface ProxyRecord {
  kind: 'connect' | 'forward';
  /** `host:port` the client asked for. */
  target: string;
  method: string;
  /**
   * Path and query of a forwarded request; undefined for tunnels, whose content the proxy does not
   * see.
   */
  path: string | undefined;
  /**
   * 200 for an opened tunnel, the origin's status for a forward, 403 refused, 502 unreachable; 0
   * pending.
   */
  status: number;
  /** True once a tunnel opened or the origin answered a forwarded request. */
  relayed: boolean;
  time: string;
}

export interface HttpProxy {
  /** `http://127.0.0.1:<port>`, for `HTTPS_PROXY` / `HTTP_PROXY`. */
  readonly url: string;
  readonly port: number;
  readonly records: readonly ProxyRecord[];
  /** Tunnels opened. */
  readonly connects: number;
  /** Plain-HTTP requests relayed with an answer from the origin. */
  readonly forwards: number;
  /**
   * Tunnels plus forwards. Prefer it in assertions: clients differ in how they proxy plain HTTP
   * (Node 24's `fetch` with `NODE_USE_ENV_PROXY` tunnels it with CONNECT, `http.get` sends
   * absolute-form).
   */
  readonly relayed: number;
  /** Closes the listener and every open client, tunnel and upstream socket. */
  close(): Promise<void>;
}

export const VIA = '1.1 test-proxy';

const LOOPBACK = new Set(['127.0.0.1', 'localhost', '::1', '[::1]']);

// Per RFC 9110 §7.6.1 these describe one hop and must not be relayed.
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-authenticate',
  'proxy-authorization',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);

/** Starts the proxy on 127.0.0.1 with an ephemeral port. */
export async function startHttpProxy(): Promise<HttpProxy> {
  const records: ProxyRecord[] = [];
  const sockets = new Set<Duplex>();
  const track = (socket: Duplex) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  };
  const server = http.createServer((req, res) => forward(req, res, records));
  server.on('connection', track);
  server.on('connect', (req: http.IncomingMessage, client: Duplex, head: Buffer) => {
    tunnel(req, client, head, records, track);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');

  const port = (server.address() as AddressInfo).port;
  const count = (kind: ProxyRecord['kind']) =>
    records.filter((r) => r.kind === kind && r.relayed).length;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    records,
    get connects() {
      return count('connect');
    },
    get forwards() {
      return count('forward');
    },
    get relayed() {
      return count('connect') + count('forward');
    },
    close: () => closeAll(server, sockets),
  };
}

function tunnel(
  req: http.IncomingMessage,
  client: Duplex,
  head: Buffer,
  records: ProxyRecord[],
  track: (socket: Duplex) => void,
): void {
  const target = req.url ?? '';
  const record = newRecord('connect', target, 'CONNECT', undefined);
  records.push(record);
  client.on('error', () => client.destroy());
  const authority = parseAuthority(target);
  if (authority === undefined || !LOOPBACK.has(authority.host)) {
    record.status = 403;
    client.end('HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n');
    return;
  }

  const upstream = net.connect(authority.port, authority.host.replace(/^\[|\]$/g, ''));
  track(upstream);
  upstream.once('connect', () => {
    record.status = 200;
    record.relayed = true;
    client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
    if (head.length > 0) upstream.write(head);
    upstream.pipe(client);
    client.pipe(upstream);
  });
  upstream.on('error', () => {
    if (record.status !== 0) return client.destroy();
    record.status = 502;
    client.end('HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n');
  });
  client.once('close', () => upstream.destroy());
  upstream.once('close', () => client.destroy());
}

function forward(
  req: http.IncomingMessage,
  res: http.ServerResponse,
  records: ProxyRecord[],
): void {
  const target = parseAbsolute(req.url ?? '');
  const record = newRecord('forward', target?.host ?? '', req.method ?? 'GET', target?.path);
  records.push(record);
  if (target === undefined || !LOOPBACK.has(target.hostname)) {
    record.status = target === undefined ? 400 : 403;
    res.writeHead(record.status, { 'content-length': '0' }).end();
    return;
  }

  const upstream = http.request(
    {
      host: target.hostname.replace(/^\[|\]$/g, ''),
      port: target.port,
      method: req.method,
      path: target.path,
      headers: { ...endToEnd(req.headers), via: VIA },
      agent: false,
    },
    (answer) => {
      record.status = answer.statusCode ?? 502;
      record.relayed = true;
      res.writeHead(record.status, endToEnd(answer.headers));
      answer.pipe(res);
    },
  );
  upstream.on('error', () => {
    if (res.headersSent) return void res.destroy();
    record.status = 502;
    res.writeHead(502, { 'content-length': '0' }).end();
  });
  req.on('error', () => upstream.destroy());
  res.once('close', () => upstream.destroy());
  req.pipe(upstream);
}

function newRecord(
  kind: ProxyRecord['kind'],
  target: string,
  method: string,
  path: string | undefined,
): ProxyRecord {
  return { kind, target, method, path, status: 0, relayed: false, time: new Date().toISOString() };
}

function parseAuthority(value: string): { host: string; port: number } | undefined {
  const match = /^(\[[^\]]+\]|[^:]+):(\d+)$/.exec(value);
  if (match === null) return undefined;
  return { host: (match[1] ?? '').toLowerCase(), port: Number(match[2]) };
}

function parseAbsolute(
  value: string,
): { host: string; hostname: string; port: number; path: string } | undefined {
  if (!/^http:\/\//i.test(value)) return undefined;
  try {
    const url = new URL(value);
    const port = Number(url.port || 80);
    return {
      host: `${url.hostname}:${port}`,
      hostname: url.hostname,
      port,
      path: url.pathname + url.search,
    };
  } catch {
    return undefined;
  }
}

function endToEnd(headers: http.IncomingHttpHeaders): http.OutgoingHttpHeaders {
  const named = String(headers.connection ?? '')
    .split(',')
    .map((name) => name.trim().toLowerCase());
  const kept: http.OutgoingHttpHeaders = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value !== undefined && !HOP_BY_HOP.has(name) && !named.includes(name)) kept[name] = value;
  }
  return kept;
}

async function closeAll(server: http.Server, sockets: Set<Duplex>): Promise<void> {
  if (!server.listening) return;
  const closed = once(server, 'close');
  server.close();
  for (const socket of sockets) socket.destroy();
  await closed;
}
