import { Registry } from 'prom-client';
import { createLogger } from '../../../src/logger.js';
import { createMetrics } from '../../../src/metrics.js';
import type { PodIdentity } from '../../../src/pods/types.js';

export function deps(start = Date.parse('2030-01-01T00:00:00Z')) {
  let now = start;
  const metrics = createMetrics(new Registry(), { defaults: false });
  return {
    clock: () => now,
    advance: (ms: number) => {
      now += ms;
    },
    metrics,
    logger: createLogger('silent'),
    async metric(name: string, labels: Record<string, string> = {}): Promise<number> {
      const m = await metrics.registry.getSingleMetric(name)?.get();
      const v = m?.values.find((x) => Object.entries(labels).every(([k, l]) => x.labels[k] === l));
      return v?.value ?? 0;
    },
  };
}

export function pod(over: Partial<PodIdentity> = {}): PodIdentity {
  return {
    ip: '169.254.10.2',
    namespace: 'team-a',
    name: 'web-0',
    uid: '7c9e6679-7425-40de-944b-e07fc1f90ae7',
    serviceAccount: 'web',
    annotations: {},
    nodeName: 'node-1',
    ...over,
  };
}

export const ROLE = 'arn:aws:iam::123456789012:role/app';
