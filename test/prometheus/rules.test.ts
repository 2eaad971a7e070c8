import type { Server } from 'node:http';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { checkConfig, checkRules, startPrometheus, testRules } from '../support/prometheus.ts';
import type { PrometheusServer } from '../support/prometheus.ts';
import { requireTools } from '../support/tools.ts';
import { probeMetricsText, serveMetrics } from './metrics-fixture.ts';

const examples = (name: string) =>
  fileURLToPath(new URL(`../../examples/prometheus/${name}`, import.meta.url));
const rulesFile = examples('mytoken-probe.rules.yml');

beforeAll(() => requireTools());

describe('example rule files', () => {
  test('pass promtool check rules', async () => {
    const result = await checkRules(rulesFile);

    expect(result.output).toContain('SUCCESS: 11 rules found');
    expect(result.ok).toBe(true);
  });

  test('pass their promtool unit tests', async () => {
    const result = await testRules(examples('mytoken-probe.rules.test.yml'));

    expect(result.output).not.toContain('FAILED');
    expect(result.ok).toBe(true);
  });

  test('are loaded by the example prometheus.yml, which passes promtool check config', async () => {
    const result = await checkConfig(examples('prometheus.yml'));

    expect(result.output).toContain('SUCCESS: 1 rule files found');
    expect(result.ok).toBe(true);
  });
});

describe('example rules in a running prometheus', () => {
  let metrics: Server;
  let prometheus: PrometheusServer;

  beforeAll(async () => {
    const served = await serveMetrics(probeMetricsText);
    metrics = served.server;
    prometheus = await startPrometheus({
      targets: [served.target],
      ruleFiles: [rulesFile],
      forDurations: { MytokenProbeCheckFailing: '2s' },
    });
  });

  afterAll(async () => {
    await prometheus?.stop();
    await new Promise((done) => metrics?.close(done));
  });

  test('see the static probe metrics scraped under job mytoken-probe', async () => {
    const samples = await prometheus.waitForQuery(
      'mytoken_probe_check_success{job="mytoken-probe"}',
    );

    expect(samples.map((s) => [s.metric.check, s.value]).sort()).toEqual([
      ['x', 0],
      ['y', 1],
    ]);
  });

  test('fire MytokenProbeCheckFailing for the failing check only', async () => {
    const alert = await prometheus.waitForAlert('MytokenProbeCheckFailing', 'firing', 15_000, {
      check: 'x',
    });

    expect(alert.labels).toMatchObject({ job: 'mytoken-probe', severity: 'critical' });
    expect(alert.annotations.summary).toBe('mytoken probe check x is failing');
    const failing = (await prometheus.alerts()).filter(
      (a) => a.labels.alertname === 'MytokenProbeCheckFailing',
    );
    expect(failing.map((a) => a.labels.check)).toEqual(['x']);
  });

  test('keep alerts with their original for: pending', async () => {
    const neverRan = await prometheus.waitForAlert('MytokenProbeCheckNeverRan', 'pending');

    expect(neverRan.labels.check).toMatch(/^[xy]$/);
  });
});
