import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startPrometheus, type PrometheusServer } from '../support/prometheus.ts';
import {
  check,
  ROOT,
  startProbe,
  workspace,
  type InProcessProbe,
  type Workspace,
} from './helpers.ts';

const RULES = join(ROOT, 'examples/prometheus/mytoken-probe.rules.yml');

describe('alert rules against a running probe', () => {
  let ws: Workspace;
  let probe: InProcessProbe;
  let prometheus: PrometheusServer;

  beforeAll(async () => {
    ws = await workspace();
    const r = ws.dev.urls.resource;
    await ws.writeConfig(
      `defaults:\n  interval: 500ms\nchecks:\n` +
        check({ name: 'health', url: `${r}/health` }) +
        check({ name: 'fail', url: `${r}/fail` }),
    );
    probe = await startProbe(ws.configFile);
    // The rules wait minutes before firing; here a second is enough to see the expression hold.
    prometheus = await startPrometheus({
      targets: [new URL(probe.base).host],
      ruleFiles: [RULES],
      forDurations: { MytokenProbeCheckFailing: '1s' },
    });
  });

  afterAll(async () => {
    await prometheus?.stop();
    await probe?.close();
    await ws?.close();
  });

  it('fires MytokenProbeCheckFailing for the failing check only', async () => {
    const alert = await prometheus.waitForAlert('MytokenProbeCheckFailing', 'firing', 30_000, {
      check: 'fail',
    });
    expect(alert.labels).toMatchObject({
      severity: 'critical',
      job: 'mytoken-probe',
      check: 'fail',
    });
    expect(alert.annotations.summary).toBe('mytoken probe check fail is failing');

    const samples = await prometheus.query('mytoken_probe_check_success');
    expect(Object.fromEntries(samples.map((s) => [s.metric.check, s.value]))).toEqual({
      health: 1,
      fail: 0,
    });
    const others = (await prometheus.alerts()).filter(
      (a) => a.labels.alertname !== 'MytokenProbeCheckFailing' || a.labels.check !== 'fail',
    );
    expect(others).toEqual([]);
  });
});
