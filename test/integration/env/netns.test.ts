// Smoke test of the namespace helpers and both iptables backends: a curl from a "client" namespace
// reaches a server in a "server" namespace only through a DNAT rule installed in a third, "router",
// namespace. Link-local addresses only; the host namespace is never touched.
import { afterEach, describe, expect, it } from 'vitest';
import {
  addRoute,
  assertLinkLocal,
  cleanupNetns,
  createNetns,
  enableForwarding,
  execIn,
  spawnIn,
  veth,
} from '../../env/netns.js';

afterEach(() => cleanupNetns());

const VIP = '169.254.30.30'; // the address the client dials; only the router's DNAT knows it

async function topology() {
  const [client, router, server] = [
    await createNetns('cli'),
    await createNetns('rtr'),
    await createNetns('srv'),
  ];
  await veth(
    { ns: client, ifname: 'eth0', addr: '169.254.10.2/30' },
    { ns: router, ifname: 'to-cli', addr: '169.254.10.1/30' },
  );
  await veth(
    { ns: server, ifname: 'eth0', addr: '169.254.20.2/30' },
    { ns: router, ifname: 'to-srv', addr: '169.254.20.1/30' },
  );
  await addRoute(client, 'default', '169.254.10.1');
  await addRoute(server, 'default', '169.254.20.1');
  await enableForwarding(router);
  return { client, router, server };
}

async function curl(ns: string, url: string) {
  return execIn(ns, 'curl', ['-sS', '-m', '3', url], { reject: false });
}

describe('network namespaces', () => {
  for (const iptables of ['iptables-nft', 'iptables-legacy']) {
    it(`${iptables}: DNAT in the router namespace connects client to server`, async () => {
      const { client, router, server } = await topology();
      const srv = spawnIn(server, process.execPath, [
        '-e',
        `require('http').createServer((q,s)=>s.end('from-server '+q.socket.remoteAddress)).listen(8080,'169.254.20.2',()=>console.log('ready'))`,
      ]);
      try {
        await new Promise<void>((resolve) => srv.stdout?.once('data', () => resolve()));
        expect((await curl(client, `http://${VIP}/`)).exitCode).not.toBe(0); // no rule yet: unreachable
        await execIn(router, iptables, [
          '-t',
          'nat',
          '-A',
          'PREROUTING',
          '-d',
          VIP,
          '-p',
          'tcp',
          '--dport',
          '80',
          '-j',
          'DNAT',
          '--to-destination',
          '169.254.20.2:8080',
        ]);
        const r = await curl(client, `http://${VIP}/`);
        expect(r.stdout).toBe('from-server 169.254.10.2');
        const rules = await execIn(router, iptables, ['-t', 'nat', '-S', 'PREROUTING']);
        expect(rules.stdout).toContain(`-d ${VIP}/32`);
      } finally {
        srv.kill();
        await srv;
      }
    });
  }

  it('cleanup kills what runs inside and removes every namespace it made', async () => {
    const ns = await createNetns('gone');
    const sleeper = spawnIn(ns, 'sleep', ['60']);
    await new Promise((r) => setTimeout(r, 200));
    cleanupNetns();
    const done = await sleeper;
    expect(done.signal).toBe('SIGKILL');
    const r = await execIn(ns, 'true', [], { reject: false });
    expect(r.exitCode).not.toBe(0);
  });

  it('refuses non-link-local test addresses', () => {
    expect(() => assertLinkLocal('10.0.0.1/24')).toThrow(/refusing/);
    expect(() => assertLinkLocal('192.168.1.1')).toThrow(/refusing/);
    expect(() => assertLinkLocal('169.254.1.1/30')).not.toThrow();
    expect(() => assertLinkLocal('fe80::1/64')).not.toThrow();
  });
});
