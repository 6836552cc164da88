import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../../src/logger.js';

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
