/**
 * The same work done by Debian's blackbox_exporter 0.23: a driver (standing in for Prometheus)
 * calls its `/probe` endpoint at a fixed rate with an `oauth2` module (client credentials against
 * the dev OP's service client), against the same target. Measures the exporter's CPU and memory
 * from /proc and the token requests the OP saw.
 */
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';

import { Agent, request } from 'undici';

import { OP_SERVICE_CLIENT } from '../../devserver/index.ts';
import { BenchError } from './errors.ts';
import { CpuWindow, memory, sleep, start, type Proc } from './procs.ts';
import { summarize, type Summary } from './stats.ts';
import { ROOT, type World } from './world.ts';

export const BLACKBOX = join(ROOT, '.tools/bin/blackbox_exporter');
const MODULE = 'mytoken_bench_oauth2';
const READY_MS = 20_000;

export interface BlackboxLoad {
  perSecond: number;
  warmupMs: number;
  windowMs: number;
}

export interface BlackboxResult {
  version: string;
  perSecond: number;
  windowSeconds: number;
  probes: number;
  succeeded: number;
  cpuSeconds: number;
  cpuPer1000: number;
  cores: number;
  targetCores: number;
  devServerCores: number;
  otherCores: number;
  rssMiB: number;
  peakRssMiB: number;
  /** Client-credentials grants the OP completed in the window. */
  tokenRequests: number;
  probeMs: Summary;
  /** The module as configured, secret left out. */
  module: string;
}

function moduleYaml(world: World, secret: string): string {
  return [
    'modules:',
    `  ${MODULE}:`,
    '    prober: http',
    '    timeout: 10s',
    '    http:',
    '      preferred_ip_protocol: ip4',
    '      valid_status_codes: [200]',
    '      oauth2:',
    `        client_id: ${OP_SERVICE_CLIENT.id}`,
    `        client_secret: ${secret}`,
    `        token_url: ${world.opIssuer}/token`,
    '',
  ].join('\n');
}

export async function startBlackbox(world: World): Promise<{ proc: Proc; base: string }> {
  if (!existsSync(BLACKBOX)) {
    throw new BenchError('ERR_BENCH_MISSING', 'blackbox_exporter missing: run npm run tools');
  }
  const config = join(world.tmp, 'blackbox.yml');
  await writeFile(config, moduleYaml(world, OP_SERVICE_CLIENT.secret), { mode: 0o600 });
  const proc = start('blackbox_exporter', BLACKBOX, [
    `--config.file=${config}`,
    '--web.listen-address=127.0.0.1:0',
  ]);
  const address = await proc.waitFor(
    (line) => /msg="Listening on" address=(\S+)/.exec(line)?.[1],
    READY_MS,
  );
  return { proc, base: `http://${address}` };
}

/** Probes at a fixed rate until `until`; returns each probe's time and whether it succeeded. */
async function drive(
  base: string,
  target: string,
  perSecond: number,
  ms: number,
): Promise<{ ms: number[]; ok: number }> {
  const agent = new Agent({ keepAliveTimeout: 30_000 });
  const url = `${base}/probe?module=${MODULE}&target=${encodeURIComponent(target)}`;
  const times: number[] = [];
  let ok = 0;
  const pending: Promise<void>[] = [];
  const t0 = performance.now();
  const total = Math.round((perSecond * ms) / 1000);
  for (let i = 0; i < total; i++) {
    const due = t0 + (i * 1000) / perSecond;
    const wait = due - performance.now();
    if (wait > 1) await sleep(wait);
    const sent = performance.now();
    pending.push(
      request(url, { dispatcher: agent, headers: { 'x-prometheus-scrape-timeout-seconds': '10' } })
        .then((res) => res.body.text())
        .then((body) => {
          times.push(performance.now() - sent);
          if (/^probe_success 1$/m.test(body)) ok++;
        }),
    );
  }
  await Promise.all(pending);
  await agent.close();
  return { ms: times, ok };
}

export async function measureBlackbox(world: World, load: BlackboxLoad): Promise<BlackboxResult> {
  const { proc, base } = await startBlackbox(world);
  try {
    const version = await blackboxVersion(base);
    await drive(base, world.targetUrl, load.perSecond, load.warmupMs);
    const grantsBefore = (await world.devStats()).op_client_credentials_grants;
    const cpu = new CpuWindow({ blackbox: proc.pid, target: world.target.pid, dev: world.dev.pid });
    const run = await drive(base, world.targetUrl, load.perSecond, load.windowMs);
    const used = cpu.end();
    const mem = memory(proc.pid);
    const grants = (await world.devStats()).op_client_credentials_grants - grantsBefore;
    const cpuSeconds = used.cpu.blackbox ?? 0;
    return {
      version,
      perSecond: load.perSecond,
      windowSeconds: used.seconds,
      probes: run.ms.length,
      succeeded: run.ok,
      cpuSeconds,
      cpuPer1000: (cpuSeconds * 1000) / run.ms.length,
      cores: cpuSeconds / used.seconds,
      targetCores: (used.cpu.target ?? 0) / used.seconds,
      devServerCores: (used.cpu.dev ?? 0) / used.seconds,
      otherCores: used.otherCores,
      rssMiB: mem.rssMiB,
      peakRssMiB: mem.peakMiB,
      tokenRequests: grants,
      probeMs: summarize(run.ms),
      module: moduleYaml(world, '<dev-service-secret>'),
    };
  } finally {
    await proc.stop();
  }
}

async function blackboxVersion(base: string): Promise<string> {
  const res = await request(`${base}/metrics`);
  const text = await res.body.text();
  return /blackbox_exporter_build_info\{[^}]*version="([^"]+)"/.exec(text)?.[1] ?? 'unknown';
}
