// pino options shared by every command. Secrets never reach a log: tokens, keys and the IMDSv2 header
// are censored wherever they appear in a logged object.
import { pino, type Logger, type LevelWithSilent } from 'pino';

// Fixed paths only: pino compiles them into plain property accesses. Wildcard paths (`*.token`) cost
// 30-55 µs per line in bench/frontdoor, more than the whole request path; the agent logs flat objects,
// so every place a secret could sit is listed here instead.
const SECRET_KEYS = [
  'token',
  'Token',
  'SecretAccessKey',
  'secretAccessKey',
  'sessionToken',
  'SessionToken',
  'webIdentityToken',
  'authorization',
];
const CONTAINERS = ['credentials', 'creds', 'headers', 'req.headers'];
export const REDACT_PATHS = [
  ...SECRET_KEYS,
  ...CONTAINERS.flatMap((c) => SECRET_KEYS.map((k) => `${c}.${k}`)),
  'headers["x-aws-ec2-metadata-token"]',
  'req.headers["x-aws-ec2-metadata-token"]',
];

export function createLogger(level: LevelWithSilent = 'info', destination?: pino.DestinationStream): Logger {
  return pino(
    {
      level,
      base: { app: 'imdsgate' },
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      timestamp: isoTimeMemo(),
      formatters: { level: (label) => ({ level: label }) },
    },
    destination,
  );
}

export type { Logger };

/**
 * pino's isoTime, formatted once per millisecond: under load many lines share a millisecond, and
 * Date#toISOString was ~3% of a cached credential request's CPU (bench/frontdoor).
 */
export function isoTimeMemo(now: () => number = Date.now): () => string {
  let last = -1;
  let text = '';
  return () => {
    const t = now();
    if (t !== last) {
      last = t;
      text = `,"time":"${new Date(t).toISOString()}"`;
    }
    return text;
  };
}
