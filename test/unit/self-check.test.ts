import { describe, expect, it } from 'vitest';
import { uplinksHolding } from '../../src/self-check.js';

describe('uplinksHolding (the interfaces that hold the node address)', () => {
  it('finds the loopback by its address, in either spelling; nothing for an address no interface holds', () => {
    expect([...uplinksHolding(['127.0.0.1'])]).toEqual(['lo']);
    expect(uplinksHolding(['0:0:0:0:0:0:0:1', undefined]).has('lo')).toBe(true);
    expect(uplinksHolding(['169.254.254.254']).size).toBe(0);
  });
});
