import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger, isoTimeMemo } from '../../src/logger.js';

function capture() {
  const lines: Record<string, unknown>[] = [];
  const dest = new Writable({
    write(chunk, _enc, cb) {
      lines.push(JSON.parse(String(chunk)) as Record<string, unknown>);
      cb();
    },
  });
  return { logger: createLogger('info', dest), lines };
}

describe('logger redaction', () => {
  it.each<[Record<string, unknown>, string]>([
    [{ token: 'abc' }, 'token'],
    [{ SecretAccessKey: 'abc' }, 'SecretAccessKey'],
    [{ credentials: { sessionToken: 'abc', secretAccessKey: 'abc' } }, 'credentials'],
    [{ headers: { 'x-aws-ec2-metadata-token': 'abc', authorization: 'abc' } }, 'headers'],
    [{ req: { headers: { 'x-aws-ec2-metadata-token': 'abc' } } }, 'req'],
    [{ webIdentityToken: 'abc' }, 'webIdentityToken'],
  ])('never writes the secret in %j', async (obj) => {
    const { logger, lines } = capture();
    logger.info(obj, 'x');
    await new Promise((r) => setImmediate(r));
    expect(JSON.stringify(lines[0])).not.toContain('abc');
    expect(JSON.stringify(lines[0])).toContain('[redacted]');
  });

  it('keeps ordinary decision fields', async () => {
    const { logger, lines } = capture();
    logger.info({ namespace: 'ns', pod: 'p', role: 'r', path: '/latest/meta-data/' }, 'decision');
    await new Promise((r) => setImmediate(r));
    expect(lines[0]).toMatchObject({ namespace: 'ns', pod: 'p', role: 'r', level: 'info' });
  });
});

describe('isoTimeMemo', () => {
  it('formats pino ISO time, reformatting only when the millisecond changes', () => {
    let t = Date.parse('2030-01-01T00:00:00.123Z');
    const time = isoTimeMemo(() => t);
    const first = time();
    expect(first).toBe(',"time":"2030-01-01T00:00:00.123Z"');
    expect(time()).toBe(first);
    t += 1;
    expect(time()).toBe(',"time":"2030-01-01T00:00:00.124Z"');
  });

  it('is what the logger writes', async () => {
    const { logger, lines } = capture();
    logger.info('x');
    await new Promise((r) => setImmediate(r));
    expect(lines[0]?.time).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  });
});
