import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { createMetrics, kubeAnswer } from '../../src/metrics.js';

describe('imdsgate_kube_requests_total', () => {
  it.each([
    [200, '2xx'],
    [201, '2xx'],
    [304, '3xx'],
    [401, '4xx'],
    [410, '4xx'],
    [429, '429'],
    [500, '5xx'],
    [504, '5xx'],
    ['error', 'error'],
    [0, 'error'],
    [700, 'error'],
  ] as const)('status %s is counted as %s', (status, code) => {
    expect(kubeAnswer(status)).toBe(code);
  });

  it('every answer class starts at 0, so a first 429 shows in increase()', async () => {
    const m = createMetrics(new Registry(), { defaults: false });
    const text = await m.registry.metrics();
    for (const code of ['2xx', '3xx', '4xx', '429', '5xx', 'error'])
      expect(text).toContain(`imdsgate_kube_requests_total{code="${code}"} 0`);
  });
});
