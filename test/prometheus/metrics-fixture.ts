// Static exposition text standing in for the probe until the real one serves its /metrics.
import { createServer } from 'node:http';
import type { Server } from 'node:http';

// Check "x" fails, check "y" passes; everything else is healthy.
export const probeMetricsText = `# HELP mytoken_probe_check_success Whether the last run of the check succeeded.
# TYPE mytoken_probe_check_success gauge
mytoken_probe_check_success{check="x"} 0
mytoken_probe_check_success{check="y"} 1
# HELP mytoken_probe_check_runs_total Check runs by result.
# TYPE mytoken_probe_check_runs_total counter
mytoken_probe_check_runs_total{check="x",result="failure"} 3
mytoken_probe_check_runs_total{check="y",result="success"} 3
# HELP mytoken_probe_check_interval_seconds Configured interval of the check.
# TYPE mytoken_probe_check_interval_seconds gauge
mytoken_probe_check_interval_seconds{check="x"} 30
mytoken_probe_check_interval_seconds{check="y"} 30
# HELP mytoken_probe_mytoken_expiry_timestamp_seconds When the mytoken expires (0: never).
# TYPE mytoken_probe_mytoken_expiry_timestamp_seconds gauge
mytoken_probe_mytoken_expiry_timestamp_seconds 0
# HELP mytoken_probe_mytoken_chain_broken Whether the rotating mytoken was lost or rejected.
# TYPE mytoken_probe_mytoken_chain_broken gauge
mytoken_probe_mytoken_chain_broken 0
`;

/** Serves `text` on every path of a loopback server; resolves with the server and its address. */
export async function serveMetrics(text: string): Promise<{ server: Server; target: string }> {
  const server = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' });
    res.end(text);
  });
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no port from listen(0)');
  return { server, target: `127.0.0.1:${address.port}` };
}
