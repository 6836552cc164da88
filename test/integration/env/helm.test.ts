// Smoke test of the pinned helm binary: it renders a chart written on the fly.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, describe, expect, it } from 'vitest';
import { testEnv } from '../../env/index.js';

const dir = mkdtempSync(join(tmpdir(), 'imdsgate-helm-smoke-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('helm', () => {
  it('renders a trivial chart with a value set on the command line', async () => {
    const chart = join(dir, 'smoke');
    mkdirSync(join(chart, 'templates'), { recursive: true });
    writeFileSync(join(chart, 'Chart.yaml'), 'apiVersion: v2\nname: smoke\nversion: 0.1.0\n');
    writeFileSync(join(chart, 'values.yaml'), 'greeting: hello\n');
    writeFileSync(
      join(chart, 'templates/cm.yaml'),
      'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-cm\ndata:\n  greeting: {{ .Values.greeting | quote }}\n',
    );
    const env = { HELM_CACHE_HOME: join(dir, 'cache'), HELM_CONFIG_HOME: join(dir, 'config') };
    const r = await execa(testEnv().bins.helm, ['template', 'rel', chart, '--set', 'greeting=hi'], { env });
    expect(r.stdout).toContain('name: rel-cm');
    expect(r.stdout).toContain('greeting: "hi"');
    const v = await execa(testEnv().bins.helm, ['version', '--short'], { env });
    expect(v.stdout).toMatch(/^v3\.19\.5/);
  });
});
