// YAML for the two files the agent may read (a kubeconfig, the identity file), loaded on first use: the
// DaemonSet reads neither (in-cluster service account, Kubernetes identity), so it never pays for a
// parser. js-yaml rather than the `yaml` package: the same YAML 1.2 core schema (duplicate keys are
// errors in both) at about a third of the resident code (bench/frontdoor RESULTS.md), and the parser
// @kubernetes/client-node itself uses for kubeconfigs.
import { createRequire } from 'node:module';

type LoadAll = (text: string, iterator?: null, opts?: { filename?: string }) => unknown[];
let loadAll: LoadAll | undefined;

/**
 * Parses one YAML document: an empty file (or only comments) is undefined, more than one document is an
 * error. Throws js-yaml's YAMLException, which names the file, line and column, on bad input.
 */
export function parseYaml(text: string, filename?: string): unknown {
  loadAll ??= (createRequire(import.meta.url)('js-yaml') as { loadAll: LoadAll }).loadAll;
  const docs = loadAll(text, null, filename === undefined ? {} : { filename });
  if (docs.length > 1) throw new Error(`${filename ?? 'YAML'}: expected one document, found ${docs.length}`);
  return docs[0];
}
