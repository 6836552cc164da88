// JS SDK v3 credential provider, run in a child node so it can live in a network namespace.
import { join } from 'node:path';
import { CLIENTS_DIR, jsonCredentials, runClient, type ClientOptions, type ImdsCredentials } from './run.js';

export function getCredentials(o: ClientOptions): Promise<ImdsCredentials> {
  return runClient('js', process.execPath, [join(CLIENTS_DIR, 'js-creds.mjs')], o, jsonCredentials);
}
