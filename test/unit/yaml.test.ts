import { describe, expect, it } from 'vitest';
import { parseYaml } from '../../src/yaml.js';

describe('parseYaml', () => {
  it('parses a kubeconfig-shaped document (YAML 1.2 core: yes stays a string)', () => {
    expect(
      parseYaml('apiVersion: v1\nclusters:\n  - name: c\n    cluster: { server: "https://x" }\nflag: yes\n'),
    ).toEqual({
      apiVersion: 'v1',
      clusters: [{ name: 'c', cluster: { server: 'https://x' } }],
      flag: 'yes',
    });
  });

  it('an empty file, or one of only comments, is undefined, not an error', () => {
    expect(parseYaml('')).toBeUndefined();
    expect(parseYaml('# nothing yet\n')).toBeUndefined();
  });

  it.each([
    ['a duplicate key', 'a: 1\na: 2\n', /duplicated mapping key/],
    ['an unclosed flow collection', 'pods: [ {', /unexpected end of the stream/],
    ['bad indentation', 'a:\n  b: 1\n c: 2\n', /bad indentation/],
    ['two documents', 'a: 1\n---\nb: 2\n', /expected one document, found 2/],
  ])('rejects %s, naming the file and line', (_n, text, why) => {
    expect(() => parseYaml(text, '/etc/x.yaml')).toThrow(why);
    expect(() => parseYaml(text, '/etc/x.yaml')).toThrow(/\/etc\/x\.yaml/);
  });
});
