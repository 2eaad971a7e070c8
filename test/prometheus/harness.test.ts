import { existsSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { checkMetrics, startPrometheus } from '../support/prometheus.ts';
import type { PrometheusServer } from '../support/prometheus.ts';
import { requireTools } from '../support/tools.ts';
import { probeMetricsText } from './metrics-fixture.ts';

beforeAll(() => requireTools());

describe('checkMetrics', () => {
  test('returns no problems for clean exposition text', async () => {
    expect(await checkMetrics(probeMetricsText)).toEqual([]);
  });

  test('returns the lint problems promtool reports', async () => {
    const text = '# HELP probe_runs Runs.\n# TYPE probe_runs counter\nprobe_runs 1\n';

    expect(await checkMetrics(text)).toEqual([
      'probe_runs counter metrics should have "_total" suffix',
    ]);
  });

  test('reports unparsable text as a problem', async () => {
    const problems = await checkMetrics('not{valid\n');

    expect(problems.join('\n')).toContain('parsing error');
  });
});

describe('startPrometheus', () => {
  let prometheus: PrometheusServer;

  beforeAll(async () => {
    prometheus = await startPrometheus({ targets: [] });
  });

  afterAll(async () => {
    await prometheus?.stop();
  });

  test('answers scalar queries', async () => {
    expect(await prometheus.query('1 + 1')).toEqual([{ metric: {}, value: 2 }]);
  });

  test('rejects invalid PromQL with ERR_PROMETHEUS_QUERY_FAILED', async () => {
    await expect(prometheus.query('sum(')).rejects.toMatchObject({
      code: 'ERR_PROMETHEUS_QUERY_FAILED',
    });
  });

  test('times out waiting for an alert that never comes with ERR_PROMETHEUS_WAIT_TIMEOUT', async () => {
    await expect(prometheus.waitForAlert('NoSuchAlert', 'firing', 300)).rejects.toMatchObject({
      code: 'ERR_PROMETHEUS_WAIT_TIMEOUT',
      message: 'alert NoSuchAlert firing not seen in 300 ms',
    });
  });

  test('stop ends the process and removes its storage', async () => {
    const pid = prometheus.pid;
    await prometheus.stop();

    expect(prometheus.alive).toBe(false);
    expect(existsSync(prometheus.dir)).toBe(false);
    expect(() => process.kill(pid ?? -1, 0)).toThrow(expect.objectContaining({ code: 'ESRCH' }));
  });
});
