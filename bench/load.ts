/**
 * The load generator for the physical limit: autocannon with keep-alive connections against the
 * target, in a process of its own so its CPU can be told apart. The access token comes in the
 * environment (BENCH_ACCESS_TOKEN), never on the command line.
 *
 *   BENCH_ACCESS_TOKEN=… node bench/load.ts URL CONNECTIONS SECONDS
 *
 * Prints one JSON line with the result.
 */
import { createRequire } from 'node:module';

interface AutocannonResult {
  requests: { average: number; total: number };
  latency: { p50: number; p99: number; average: number };
  duration: number;
  errors: number;
  timeouts: number;
  non2xx: number;
  '2xx': number;
}

type Autocannon = (opts: {
  url: string;
  connections: number;
  duration: number;
  pipelining: number;
  headers: Record<string, string>;
}) => Promise<AutocannonResult>;

const autocannon = createRequire(import.meta.url)('autocannon') as Autocannon;

const [url, connections, seconds] = process.argv.slice(2);
const token = process.env.BENCH_ACCESS_TOKEN;
if (url === undefined || token === undefined) {
  process.stderr.write('usage: BENCH_ACCESS_TOKEN=… node bench/load.ts URL CONNECTIONS SECONDS\n');
  process.exit(2);
}
const result = await autocannon({
  url,
  connections: Number(connections ?? 50),
  duration: Number(seconds ?? 10),
  pipelining: 1,
  headers: { authorization: `Bearer ${token}` },
});
process.stdout.write(
  `${JSON.stringify({
    perSecond: result['2xx'] / result.duration,
    requests: result.requests.total,
    ok: result['2xx'],
    non2xx: result.non2xx,
    errors: result.errors,
    timeouts: result.timeouts,
    seconds: result.duration,
    latencyMs: { p50: result.latency.p50, p99: result.latency.p99 },
  })}\n`,
);
