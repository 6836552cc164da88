import { describe, expect, it } from 'vitest';
import { ConfigError, envName, flagName, loadConfig } from '../../src/config.js';

// --host-ip: the default --listen (0.0.0.0) names no address the rules could DNAT to.
const base = ['--identity-file', '/tmp/x.yaml', '--host-ip', '169.254.100.1'];

describe('loadConfig', () => {
  it('applies defaults and freezes the result', () => {
    const cfg = loadConfig(base, {});
    expect(cfg.listen).toBe('0.0.0.0:8181');
    expect(cfg.imdsv1).toBe('allow');
    expect(cfg.interfaces).toEqual(['eni+', 'cali+', 'lxc+', 'veth+', 'cni0']);
    expect(Object.isFrozen(cfg)).toBe(true);
  });

  it('lets flags win over IMDSGATE_* variables', () => {
    const cfg = loadConfig([...base, '--listen', '127.0.0.1:1'], { IMDSGATE_LISTEN: '127.0.0.1:2' });
    expect(cfg.listen).toBe('127.0.0.1:1');
    expect(loadConfig(base, { IMDSGATE_LISTEN: '127.0.0.1:2' }).listen).toBe('127.0.0.1:2');
  });

  it('lists every problem in one error', () => {
    const run = () =>
      loadConfig(['--listen', 'nope', '--imdsv1', 'maybe', '--session-duration-seconds', '5'], {});
    expect(run).toThrow(ConfigError);
    try {
      run();
    } catch (e) {
      const problems = (e as ConfigError).problems.join('\n');
      expect(problems).toMatch(/--listen/);
      expect(problems).toMatch(/--imdsv1/);
      expect(problems).toMatch(/--session-duration-seconds/);
    }
  });

  it('rejects unknown flags and cross-option mistakes', () => {
    expect(() => loadConfig([...base, '--nope'], {})).toThrow(/nope/);
    expect(() => loadConfig([], {})).toThrow(/--node-name/);
    expect(() => loadConfig([...base, '--session-duration-seconds', '7200'], {})).toThrow(/role chaining/);
  });

  it('--kube-api-qps / --kube-api-burst: client-go defaults, whole numbers, burst at least 1, qps 0 = off', () => {
    expect(loadConfig(base, {})).toMatchObject({ kubeApiQps: 5, kubeApiBurst: 10 });
    expect(loadConfig([...base, '--kube-api-qps', '0'], { IMDSGATE_KUBE_API_BURST: '40' })).toMatchObject({
      kubeApiQps: 0,
      kubeApiBurst: 40,
    });
    let problems: string[] = [];
    try {
      loadConfig([...base, '--kube-api-qps', '2.5', '--kube-api-burst', '0'], {});
    } catch (e) {
      problems = (e as ConfigError).problems;
    }
    expect(problems).toEqual([
      '--kube-api-qps / IMDSGATE_KUBE_API_QPS: must be a whole number (got "2.5")',
      '--kube-api-burst / IMDSGATE_KUBE_API_BURST: must be at least 1 (got "0")',
    ]);
    expect(() => loadConfig(base, { IMDSGATE_KUBE_API_QPS: '-1' })).toThrow(/must be at least 0/);
    expect(() => loadConfig(base, { IMDSGATE_KUBE_API_QPS: 'lots' })).toThrow(/must be a number/);
  });

  it('names flags and variables consistently', () => {
    expect(flagName('metricsListen')).toBe('metrics-listen');
    expect(envName('metricsListen')).toBe('IMDSGATE_METRICS_LISTEN');
  });
});

describe('session duration', () => {
  it('refuses sessions too short to serve with 25 minutes left', () => {
    expect(() => loadConfig([...base, '--session-duration-seconds', '1200'], {})).toThrow(
      /--session-duration-seconds/,
    );
    expect(loadConfig([...base, '--session-duration-seconds', '1800'], {}).sessionDurationSeconds).toBe(1800);
  });
});

describe('startup taint', () => {
  it('needs the node name, even with an identity file', () => {
    expect(() => loadConfig([...base, '--startup-taint', 'imdsgate.io/agent-not-ready'], {})).toThrow(
      /--startup-taint needs --node-name/,
    );
    expect(loadConfig([...base, '--startup-taint', 'k', '--node-name', 'n'], {}).startupTaint).toBe('k');
  });

  it.each<[Record<string, string>, RegExp]>([
    [{ IMDSGATE_LISTEN: 'nonsense' }, /--listen .*must be HOST:PORT .*got "nonsense"/],
    [{ IMDSGATE_LISTEN: '127.0.0.1:99999' }, /--listen .*port must be 0-65535/],
    [{ IMDSGATE_UPSTREAM: 'ftp://x' }, /--upstream .*must be an http/],
    [{ IMDSGATE_UPSTREAM: 'not a url' }, /--upstream .*must be an http/],
    [{ IMDSGATE_IMDSV1: 'maybe' }, /--imdsv1 .*must be one of allow\|deny/],
    [{ IMDSGATE_UPSTREAM_TIMEOUT_MS: 'abc' }, /--upstream-timeout-ms .*must be a number/],
    [{ IMDSGATE_UPSTREAM_TIMEOUT_MS: '1.5' }, /--upstream-timeout-ms .*whole number/],
    [{ IMDSGATE_UPSTREAM_TIMEOUT_MS: '10' }, /--upstream-timeout-ms .*at least 50/],
    [{ IMDSGATE_IPV6: 'maybe' }, /--ipv6 .*must be true\|false\|1\|0/],
    [{ IMDSGATE_HOST_IP: '1.2.3' }, /--host-ip .*IPv4/],
    [{ IMDSGATE_HOST_IPV6: '1.2.3.4' }, /--host-ipv6 .*IPv6/],
    [{ IMDSGATE_REGION: 'US' }, /--region .*us-east-1/],
    [{ IMDSGATE_BASE_ROLE_ARN: 'arn:aws:iam::1:role/' }, /--base-role-arn .*arn:PARTITION/],
    [{ IMDSGATE_LOG_LEVEL: 'loud' }, /--log-level .*one of trace\|debug/],
    [{ IMDSGATE_IPAM_LEASE_DIR: 'var/lib/cni' }, /--ipam-lease-dir .*absolute path/],
    [{ IMDSGATE_IPAM_LEASE_DIR: '/var/lib/../../etc' }, /--ipam-lease-dir .*absolute path/],
  ])('names the option, the rule and the value: %o', (env, why) => {
    expect(() => loadConfig(['--identity-file', '/tmp/x.yaml'], env)).toThrow(why);
  });

  it('--ipam-lease-dir defaults to host-local\u2019s dataDir; empty (flag or variable) turns leases off', () => {
    expect(loadConfig(base, {}).ipamLeaseDir).toBe('/var/lib/cni/networks');
    expect(loadConfig([...base, '--ipam-lease-dir', '/run/cni/ipam'], {}).ipamLeaseDir).toBe('/run/cni/ipam');
    expect(loadConfig([...base, '--ipam-lease-dir='], {}).ipamLeaseDir).toBe('');
    expect(loadConfig(base, { IMDSGATE_IPAM_LEASE_DIR: '' }).ipamLeaseDir).toBe('');
  });

  it('reads booleans and numbers from variables; an empty variable means unset', () => {
    const cfg = loadConfig(base, {
      IMDSGATE_LISTEN: '[::]:8181',
      IMDSGATE_IPV6: 'TRUE',
      IMDSGATE_HOST_IPV6: 'fd00:100::1',
      IMDSGATE_UPSTREAM_TIMEOUT_MS: '900',
      IMDSGATE_REGION: '',
    });
    expect(cfg).toMatchObject({ ipv6: true, upstreamTimeoutMs: 900 });
    expect(cfg.region).toBeUndefined();
    expect(loadConfig(base, { IMDSGATE_MANAGE_RULES: '0' }).manageRules).toBe(false);
  });
});

describe('the rules are validated with the rest of the configuration (exit 2, no port opened)', () => {
  it.each([
    [['--interfaces', 'eni+,!eth0'], /--interfaces: mix of "!name" and "name"/],
    [['--interfaces', 'much-too-long-name0'], /--interfaces: "much-too-long-name0" is not an interface name/],
    [[], /--host-ip is required: --listen 0.0.0.0:8181 does not name one ipv4 address/],
    [['--host-ip', '127.0.0.1'], /--host-ip 127.0.0.1: must be a node address reachable from pods/],
  ])('%j', (args, why) => {
    expect(() => loadConfig(['--identity-file', '/tmp/x.yaml', ...args], {})).toThrow(why);
  });

  it('listed together with the other problems', () => {
    try {
      loadConfig(
        ['--identity-file', '/tmp/x.yaml', '--interfaces', 'a+,!b', '--session-duration-seconds', '7200'],
        {},
      );
      expect.unreachable();
    } catch (e) {
      expect((e as ConfigError).problems).toEqual([
        expect.stringMatching(/role chaining/),
        expect.stringMatching(/--interfaces: mix/),
        expect.stringMatching(/--host-ip is required/),
      ]);
    }
  });

  it('not checked when the agent does not manage the rules, nor for uninstall', () => {
    expect(
      loadConfig(['--identity-file', '/tmp/x.yaml'], { IMDSGATE_MANAGE_RULES: 'false' }).manageRules,
    ).toBe(false);
    expect(loadConfig([], {}, { command: 'uninstall' }).iptablesBackend).toBe('auto');
  });
});

describe('boolean flags take a value: --flag=true|false|1|0, the config schema decides', () => {
  it.each<[string[], boolean]>([
    [['--manage-rules=false'], false],
    [['--manage-rules=FALSE'], false],
    [['--manage-rules=0'], false],
    [['--manage-rules=true'], true],
    [['--manage-rules'], true],
    [['--manage-rules=false', '--manage-rules'], true],
    [['--manage-rules', '--manage-rules=false'], false],
    [['--manage-rules=true', '--manage-rules=0'], false],
  ])('%j → manageRules %s', (args, want) => {
    expect(loadConfig([...base, ...args], {}).manageRules).toBe(want);
  });

  it('a flag wins over the variable either way', () => {
    expect(loadConfig([...base, '--ipv6=false'], { IMDSGATE_IPV6: 'true' }).ipv6).toBe(false);
    const v6 = [...base, '--host-ipv6', 'fd00:100::1', '--listen', '[::]:8181'];
    expect(loadConfig([...v6, '--ipv6=1'], { IMDSGATE_IPV6: 'false' }).ipv6).toBe(true);
  });

  it.each<[string, RegExp]>([
    [
      '--manage-rules=maybe',
      /--manage-rules \/ IMDSGATE_MANAGE_RULES: must be true\|false\|1\|0 \(got "maybe"\)/,
    ],
    ['--ipv6=', /--ipv6 \/ IMDSGATE_IPV6: must be true\|false\|1\|0 \(got ""\)/],
    ['--ipv6=yes', /--ipv6 .*must be true\|false\|1\|0 \(got "yes"\)/],
  ])('%s is a configuration problem (exit 2), named with the value', (arg, why) => {
    expect(() => loadConfig([...base, arg], {})).toThrow(ConfigError);
    expect(() => loadConfig([...base, arg], {})).toThrow(why);
  });

  it('string flags keep their own =VALUE form and unknown ones still fail', () => {
    expect(loadConfig([...base, '--region=eu-west-1'], {}).region).toBe('eu-west-1');
    expect(() => loadConfig([...base, '--nope=false'], {})).toThrow(/nope/);
  });
});
