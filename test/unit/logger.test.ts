import { EventEmitter } from 'node:events';
import { Writable } from 'node:stream';
import { describe, expect, it, vi } from 'vitest';
import { createLogger, handleProcessWarnings, isoTimeMemo, logProcessWarnings } from '../../src/logger.js';

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

describe('process warnings', () => {
  const fakeProcess = (execArgv: string[]) => Object.assign(new EventEmitter(), { execArgv });
  const warning = () => {
    const w = new Error(
      'The AWS SDK for JavaScript (v3)\nversions published after ...\n  will require node >=22.',
    );
    w.name = 'NodeVersionSupportWarning';
    return w;
  };

  it('leaves them to Node when Node prints them itself (no --no-warnings)', () => {
    const proc = fakeProcess([]);
    handleProcessWarnings(proc as never);
    expect(proc.listenerCount('warning')).toBe(0);
  });

  it('prints one stderr line when Node does not, and a JSON line while serve routes them to its logger', async () => {
    const proc = fakeProcess(['--max-semi-space-size=1', '--no-warnings']);
    handleProcessWarnings(proc as never);
    const err = vi.spyOn(process.stderr, 'write').mockReturnValue(true);
    proc.emit('warning', warning());
    expect(err).toHaveBeenCalledWith(
      'imdsgate: NodeVersionSupportWarning: The AWS SDK for JavaScript (v3) versions published after ... will require node >=22.\n',
    );
    err.mockRestore();

    const { logger, lines } = capture();
    const restore = logProcessWarnings(logger);
    proc.emit('warning', warning());
    await new Promise((r) => setImmediate(r));
    expect(lines[0]).toMatchObject({ level: 'warn', warning: 'NodeVersionSupportWarning' });
    expect(lines[0]?.msg).toMatch(/^The AWS SDK .* node >=22\.$/);
    restore();
    const again = vi.spyOn(process.stderr, 'write').mockReturnValue(true);
    proc.emit('warning', warning());
    expect(again).toHaveBeenCalledTimes(1);
    again.mockRestore();
    expect(lines).toHaveLength(1);
  });
});
