import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createBatchedDestination } from '../../src/log-destination.js';
import { createLogger } from '../../src/logger.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function fileDestination() {
  const dir = mkdtempSync(join(tmpdir(), 'imdsgate-logdest-'));
  dirs.push(dir);
  const file = join(dir, 'log');
  const dest = createBatchedDestination(file);
  const read = () => readFileSync(file, 'utf8');
  return { dest, read };
}

const turn = () => new Promise((r) => setImmediate(r));

describe('batched log destination', () => {
  it('writes the lines of one event-loop turn together, in order, by the end of that turn', async () => {
    const { dest, read } = fileDestination();
    const logger = createLogger('info', dest);
    for (let i = 0; i < 3; i++) logger.info({ i }, 'line');
    expect(read()).toBe('');
    await turn();
    const lines = read()
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { i: number; msg: string });
    expect(lines.map((l) => l.i)).toEqual([0, 1, 2]);
    expect(lines.every((l) => l.msg === 'line')).toBe(true);
  });

  it('writes a lone line promptly and keeps redaction', async () => {
    const { dest, read } = fileDestination();
    createLogger('info', dest).info({ token: 'secret-token' }, 'x');
    await turn();
    expect(read()).toContain('[redacted]');
    expect(read()).not.toContain('secret-token');
  });

  it('writes batches larger than one sonic-boom write completely', async () => {
    const { dest, read } = fileDestination();
    const logger = createLogger('info', dest);
    const pad = 'x'.repeat(1000);
    for (let i = 0; i < 200; i++) logger.info({ i, pad }, 'big');
    await turn();
    const lines = read().trim().split('\n');
    expect(lines).toHaveLength(200);
    expect((JSON.parse(lines[199]!) as { i: number }).i).toBe(199);
  });

  it('flushSync writes what is pending at once (shutdown); flush(cb) too', async () => {
    const { dest, read } = fileDestination();
    const logger = createLogger('info', dest);
    logger.info('first');
    dest.flushSync();
    expect(read()).toContain('first');
    logger.info('second');
    await new Promise<void>((resolve, reject) => logger.flush((err) => (err ? reject(err) : resolve())));
    expect(read()).toContain('second');
    await turn();
    expect(read().trim().split('\n')).toHaveLength(2);
  });
});
