/**
 * A forward proxy on 127.0.0.1 that relays plain-HTTP requests (absolute form, as undici sends them for `http://`
 * targets under HTTP_PROXY) to loopback servers and can rewrite chosen answers on the way back. It puts a real
 * server's real answers (a real rotation included) in front of the client with one detail broken, which the
 * server itself would never do: a `token_update` without its token, an access-token answer without the token, a
 * discovery document that points elsewhere.
 *
 * @example
 * const proxy = await startTamperProxy();
 * proxy.tamper({ path: '/api/v0/token/access', rewrite: (a) => ({ ...a, body: '{}' }) });
 * // run the client with a ProxyAgent, or the Action with HTTP_PROXY=proxy.url
 */
import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

export interface TamperRule {
  /** Path (without query) of the requests whose answers are rewritten. */
  path: string;
  method?: string;
  /** How many answers to rewrite; default 1. */
  times?: number;
  rewrite(answer: Answer): Answer;
}

export interface TamperProxy {
  readonly url: string;
  tamper(rule: TamperRule): void;
  /** Rewrites not yet applied. */
  pending(): number;
  /** Requests relayed, as `METHOD host:port/path`. */
  readonly relayed: readonly string[];
  close(): Promise<void>;
}

const LOOPBACK = new Set(['127.0.0.1', 'localhost', '[::1]']);
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'proxy-connection']);

export async function startTamperProxy(): Promise<TamperProxy> {
  const rules: (TamperRule & { left: number })[] = [];
  const relayed: string[] = [];
  const server = http.createServer((req, res) => {
    const target = URL.canParse(req.url ?? '') ? new URL(req.url ?? '') : undefined;
    if (target === undefined || target.protocol !== 'http:' || !LOOPBACK.has(target.hostname)) {
      res.writeHead(403, { 'content-length': '0' }).end();
      return;
    }
    relayed.push(`${req.method} ${target.host}${target.pathname}`);
    const rule = rules.find(
      (r) => r.left > 0 && r.path === target.pathname && (r.method ?? req.method) === req.method,
    );
    if (rule !== undefined) rule.left -= 1;
    relay(req, res, target, rule);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    tamper: (rule) => rules.push({ ...rule, left: rule.times ?? 1 }),
    pending: () => rules.reduce((n, r) => n + r.left, 0),
    relayed,
    close: async () => {
      const closed = once(server, 'close');
      server.close();
      server.closeAllConnections();
      await closed;
    },
  };
}

function relay(
  req: http.IncomingMessage,
  res: http.ServerResponse,
  target: URL,
  rule: TamperRule | undefined,
): void {
  const upstream = http.request(
    {
      host: target.hostname,
      port: target.port,
      method: req.method,
      path: target.pathname + target.search,
      headers: endToEnd(req.headers, true),
      agent: false,
    },
    (answer) => {
      const chunks: Buffer[] = [];
      answer.on('data', (chunk: Buffer) => chunks.push(chunk));
      answer.on('error', () => res.destroy());
      answer.on('end', () => {
        const original: Answer = {
          status: answer.statusCode ?? 502,
          headers: endToEnd(answer.headers) as http.IncomingHttpHeaders,
          body: Buffer.concat(chunks).toString('utf8'),
        };
        const sent = rule === undefined ? original : rule.rewrite(original);
        const headers = { ...sent.headers, 'content-length': String(Buffer.byteLength(sent.body)) };
        res.writeHead(sent.status, headers).end(sent.body);
      });
    },
  );
  upstream.on('error', () => (res.headersSent ? res.destroy() : res.writeHead(502).end()));
  req.pipe(upstream);
}

/** Headers to pass on; an answer's length is dropped (a rewrite changes it), a request's kept. */
function endToEnd(headers: http.IncomingHttpHeaders, request = false): http.OutgoingHttpHeaders {
  const kept: http.OutgoingHttpHeaders = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined || HOP_BY_HOP.has(name)) continue;
    if (request || name !== 'content-length') {
      kept[name] = value;
    }
  }
  return kept;
}

/** Rewrites a JSON answer body with `change`, which may mutate the parsed object. */
export function rewriteJson(
  change: (body: Record<string, unknown>) => void,
): TamperRule['rewrite'] {
  return (answer) => {
    const body = JSON.parse(answer.body) as Record<string, unknown>;
    change(body);
    return { ...answer, body: JSON.stringify(body) };
  };
}
