// JS SDK v3 credential provider, run in a child node so it can live in a network namespace.
import { join } from 'node:path';
import {
  CLIENTS_DIR,
  lastLine,
  runClient,
  toCredentials,
  type ClientOptions,
  type ImdsCredentials,
} from './run.js';

export function getCredentials(o: ClientOptions): Promise<ImdsCredentials> {
  return runClient('js', process.execPath, [join(CLIENTS_DIR, 'js-creds.mjs')], o, (out) =>
    toCredentials(JSON.parse(lastLine(out)) as Record<string, unknown>),
  );
}
