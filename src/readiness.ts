// Readiness from live state: what /readyz answers, imdsgate_ready shows at every scrape, and the startup
// taint waits for. Each input is read when asked, never remembered from start-up:
//   - the rules: the rule guard's last reconcile pass (netfilter/guard.ts), every --reconcile-interval;
//   - the interception self-check's last result (netfilter/interception.ts);
//   - the upstream IMDS: a real GET through the agent's session, at most once per upstreamTtlMs so that
//     probes and scrapes together do not load IMDS (a few requests a minute, far under its limits:
//     https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/instancedata-data-retrieval.html#instancedata-throttling);
//   - the pod view: synced and fresh (pods/watcher.ts).
import type { UpstreamImds } from './imds/upstream.js';
import type { InterceptionState } from './netfilter/interception.js';
import type { Clock } from './pods/types.js';

export interface ReadinessInputs {
  readonly upstream: Pick<UpstreamImds, 'forward'>;
  readonly identityReady: () => boolean;
  /** Problems of the interception rules; undefined while they are not installed yet. */
  readonly rules: () => readonly string[] | undefined;
  readonly interception: () => InterceptionState | undefined;
  readonly clock: Clock;
  readonly upstreamTtlMs?: number;
}

/** An always-present path (https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/instancedata-data-categories.html). */
const PROBE_PATH = '/latest/meta-data/instance-id';

export function createReadiness(i: ReadinessInputs): () => Promise<string[]> {
  const ttl = i.upstreamTtlMs ?? 5_000;
  let checked: { at: number; problem: string | undefined } | undefined;
  let pending: Promise<string | undefined> | undefined;

  const probeUpstream = async (): Promise<string | undefined> => {
    try {
      const res = await i.upstream.forward('GET', PROBE_PATH);
      return res.status < 500 ? undefined : `upstream IMDS answered ${res.status}`;
    } catch (err) {
      return `upstream IMDS: ${(err as Error).message}`;
    }
  };
  const upstreamProblem = async () => {
    const now = i.clock();
    if (checked !== undefined && now - checked.at < ttl) return checked.problem;
    pending ??= probeUpstream().finally(() => (pending = undefined));
    const problem = await pending;
    checked = { at: i.clock(), problem };
    return problem;
  };

  return async () => {
    const reasons: string[] = [];
    const rules = i.rules();
    if (rules === undefined) reasons.push('interception rules not installed');
    else reasons.push(...rules);
    const interception = i.interception();
    if (interception !== undefined && !interception.ok)
      reasons.push(`interception self-check: ${interception.reason}: ${interception.detail}`);
    const upstream = await upstreamProblem();
    if (upstream !== undefined) reasons.push(upstream);
    if (!i.identityReady()) reasons.push('identity not synced, or pod view stale');
    return reasons;
  };
}
