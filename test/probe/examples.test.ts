import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse, parseAllDocuments } from 'yaml';
import { parseConfig } from '../../probe/config.ts';
import { ROOT } from './helpers.ts';

const read = (path: string) => readFile(join(ROOT, path), 'utf8');

describe('probe examples', () => {
  it('documents a config that the probe accepts', async () => {
    const config = parseConfig(
      await read('examples/probe/config.yml'),
      join(ROOT, 'examples/probe/config.yml'),
    );
    expect(config.checks.map((c) => c.name)).toEqual([
      'api-health',
      'orders-search',
      'nightly-report',
    ]);
  });

  it('has a demo config with one passing and one failing check once its URLs are filled in', async () => {
    const text = (await read('examples/probe/demo.yml'))
      .replaceAll('{{mytoken_server}}', 'http://127.0.0.1:8080')
      .replaceAll('{{resource}}', 'http://127.0.0.1:8080/resource');
    const config = parseConfig(text, '/tmp/demo/probe.yml');
    expect(config.listen).toEqual({ host: '127.0.0.1', port: 9464 });
    expect(config.mytoken.tokenFile).toBe('/tmp/demo/mytoken');
    expect(config.checks.map((c) => c.url)).toEqual([
      'http://127.0.0.1:8080/resource/health',
      'http://127.0.0.1:8080/resource/fail',
    ]);
  });

  it('ships Kubernetes manifests that parse, with a config the probe accepts', async () => {
    const dir = join(ROOT, 'examples/kubernetes');
    const kinds: string[] = [];
    for (const file of (await readdir(dir)).filter((f) => f.endsWith('.yaml')).sort()) {
      for (const doc of parseAllDocuments(await readFile(join(dir, file), 'utf8'))) {
        expect(doc.errors).toEqual([]);
        kinds.push((doc.toJS() as { kind: string }).kind);
      }
    }
    expect(kinds.sort()).toEqual([
      'ConfigMap',
      'Deployment',
      'Kustomization',
      'PersistentVolumeClaim',
      'PrometheusRule',
      'Secret',
      'Service',
      'ServiceMonitor',
    ]);
    const configMap = parse(await read('examples/kubernetes/configmap.yaml')) as {
      data: Record<string, string>;
    };
    expect(parseConfig(configMap.data['config.yml']!).listen).toEqual({
      host: '0.0.0.0',
      port: 9464,
    });
  });

  it('runs exactly one pod per rotating token, never two at once', async () => {
    const deployment = parse(await read('examples/kubernetes/deployment.yaml')) as {
      spec: { replicas: number; strategy: { type: string } };
    };
    expect(deployment.spec.replicas).toBe(1);
    expect(deployment.spec.strategy.type).toBe('Recreate');
  });

  it('carries the same alerts in the PrometheusRule as in the Prometheus rule file', async () => {
    const rules = parse(await read('examples/prometheus/mytoken-probe.rules.yml')) as {
      groups: unknown;
    };
    const rule = parse(await read('examples/kubernetes/prometheusrule.yaml')) as {
      spec: { groups: unknown };
    };
    expect(rule.spec.groups).toEqual(rules.groups);
  });
});
