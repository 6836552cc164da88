#!/usr/bin/env node
// Cost of the listing filter (src/imds/listing.ts) on a forwarded meta-data/ listing, against a same-run
// baseline: the work every forwarded answer does anyway (a content-type check and one Buffer copy).
// Pure CPU in one process, no sockets; medians of BENCH_REPEAT rounds of BENCH_N calls each.
// Needs `npm run build` (uses dist/). Prints a Markdown table; nothing is written.
import { Buffer } from 'node:buffer';
import { performance } from 'node:perf_hooks';
import { cpus, loadavg } from 'node:os';
import { createListingFilter, filterListing } from '../../dist/imds/listing.js';
import { passedContentType } from '../../dist/imds/exchange.js';
import { createPathPolicy } from '../../dist/imds/paths.js';

const N = Number(process.env.BENCH_N ?? 20_000);
const REPEAT = Number(process.env.BENCH_REPEAT ?? 7);
// amazon-ec2-metadata-mock's meta-data/ listing (v1.13.0), as the agent receives it.
const META = Buffer.from(
  'ami-id\nami-launch-index\nami-manifest-path\nautoscaling/\nblock-device-mapping/\nelastic-inference/\n' +
    'events/\nhostname\niam/\ninstance-action\ninstance-id\ninstance-life-cycle\ninstance-type\nkernel-id\n' +
    'local-hostname\nlocal-ipv4\nmac\nnetwork/\nplacement/\nproduct-codes\npublic-hostname\npublic-ipv4\n' +
    'public-keys/\nramdisk-id\nreservation-id\nsecurity-groups\nservices/\nspot/\ntags/\n',
);
const policy = createPathPolicy();
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function time(fn) {
  const rounds = [];
  for (let r = 0; r < REPEAT; r++) {
    const t0 = performance.now();
    for (let i = 0; i < N; i++) await fn();
    rounds.push(((performance.now() - t0) * 1000) / N);
  }
  return median(rounds);
}

const baseline = await time(async () => passedContentType('text/plain') && Buffer.from(META));
const noRole = await time(() => filterListing(META, '/latest/meta-data/', policy, () => false));
const withRole = await time(() => filterListing(META, '/latest/meta-data/', policy, () => true));
const memo = createListingFilter(policy);
const memoNoRole = await time(() => memo(META, '/latest/meta-data/', () => false));
const memoWithRole = await time(() => memo(META, '/latest/meta-data/', () => true));
const placement = Buffer.from('availability-zone\navailability-zone-id\ngroup-name\nhost-id\nregion\n');
const nothingHidden = await time(() =>
  filterListing(placement, '/latest/meta-data/placement/', policy, () => false),
);

console.log(
  `Machine: ${cpus().length} × ${cpus()[0]?.model}, Node ${process.version}, load ${loadavg()
    .map((l) => l.toFixed(1))
    .join(' ')}`,
);
console.log(`${REPEAT} rounds × ${N} calls, medians (µs per call)\n`);
console.log('| case | µs/call | × baseline |\n| --- | ---: | ---: |');
for (const [name, us] of [
  ['baseline: content-type check + Buffer copy of the listing', baseline],
  ['meta-data/ listing, pod without a role, computed afresh', noRole],
  ['meta-data/ listing, pod with a role, computed afresh', withRole],
  ['remembered (what the agent runs): meta-data/, no role', memoNoRole],
  ['remembered (what the agent runs): meta-data/, with a role', memoWithRole],
  ['placement/ listing (nothing to hide: returned as is)', nothingHidden],
])
  console.log(`| ${name} | ${us.toFixed(2)} | ${(us / baseline).toFixed(1)} |`);
