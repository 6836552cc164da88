// The request path, one way: canonical path → class → method → token / IMDSv1 policy → answer
// (agent-made for tokens and IAM paths, upstream for allowed paths, 404 for the rest). Framework-free,
// so app.ts stays a thin fastify adapter. Never throws: every outcome becomes an Answer, one metric
// sample and, for decisions, one log line.
import { ImdsError } from '../errors.js';
import { createListingFilter } from '../imds/listing.js';
import { createPathPolicy, type PathClass } from '../imds/paths.js';
import { TOKEN_HEADER, TTL_HEADER, parseTtl, type TokenBinding } from '../imds/tokens.js';
import type { PodLookupResult } from '../pods/types.js';
import { errorAnswer } from './answers.js';
import { answerIam, podHasRole } from './iam.js';
import { createDecisionLoggers, record, type RequestContext } from './record.js';
import { createTargetMemo, isIdentityPath, type Target } from './targets.js';
import type { Answer, AppDeps, PodRequest } from './types.js';

export function createPipeline(deps: AppDeps) {
  const policy = createPathPolicy({ allow: deps.config.allowPath, deny: deps.config.denyPath });
  const targets = createTargetMemo(policy);
  const filterListing = createListingFilter(policy);
  const decisionLoggers = createDecisionLoggers(deps.logger);

  async function route(req: PodRequest, ctx: RequestContext): Promise<Answer> {
    const t = targets.get(req.target);
    if (!t.ok) throw new ImdsError('PATH_NOT_CANONICAL', t.reason);
    ctx.path = t.path;
    ctx.route = t.route;
    const cls = t.cls;
    if (cls.kind === 'refused') throw new ImdsError('PATH_NOT_CANONICAL', cls.reason);
    if (cls.kind === 'token') return mintToken(req, cls.versioned);
    if (req.method !== 'GET' && req.method !== 'HEAD') throw new ImdsError('METHOD_NOT_ALLOWED', req.method);
    // Before the first full pod list, or once the view is stale, an IP may belong to a pod the view has not
    // seen: identity paths fail closed with a prompt 503 rather than wait or guess. Forwarding needs no
    // identity and goes on.
    if (isIdentityPath(cls) && !deps.podLookup.isReady())
      throw new ImdsError('NOT_READY', 'pod view not ready');
    const lookup = await deps.podLookup.byIp(req.sourceIp, req.connection, { wait: needsWait(req, cls) });
    checkSession(req, lookup);
    switch (cls.kind) {
      case 'concealed':
        throw new ImdsError('PATH_CONCEALED', cls.reason);
      case 'forward':
      case 'version-listing':
        // HEAD goes upstream as GET; Node drops the body and the headers stay those of a GET (§13 #14).
        return forward(t, lookup);
      default:
        return answerIam(deps, cls, lookup, ctx);
    }
  }

  async function forward(t: Extract<Target, { ok: true }>, lookup: PodLookupResult): Promise<Answer> {
    const res = await deps.upstream.forward('GET', t.wire);
    // A listing names only what this pod can then read (imds/listing.ts).
    const body =
      t.dir && res.status === 200
        ? await filterListing(res.body, t.path, () => podHasRole(deps, lookup))
        : res.body;
    return {
      status: res.status,
      body,
      ...(res.contentType ? { contentType: res.contentType } : {}),
    };
  }

  async function mintToken(req: PodRequest, versioned: boolean): Promise<Answer> {
    if (req.method !== 'PUT') throw new ImdsError('METHOD_NOT_ALLOWED', `${req.method} on the token path`);
    if (versioned) throw reject('versioned', 'TOKEN_PATH_VERSIONED');
    // IMDS refuses a token PUT that went through a proxy (UG-v2; docs/protocol.md §0.2, §13 #9).
    if (req.headers['x-forwarded-for'] !== undefined) throw reject('forwarded_for', 'FORWARDED_FOR_REJECTED');
    const ttl = parseTtl(req.headers[TTL_HEADER]);
    if (ttl === undefined) throw reject('ttl_invalid', 'TOKEN_TTL_INVALID');
    const token = deps.tokens.mint(
      bindingOf(req, await deps.podLookup.byIp(req.sourceIp, req.connection)),
      ttl,
    );
    deps.metrics.tokensMinted.inc();
    return { status: 200, contentType: 'text/plain', body: token, headers: { [TTL_HEADER]: String(ttl) } };
  }

  /** IMDSv2 token, or IMDSv1 when the pod's policy allows it (§3.1, §13 #11, #12, #36). */
  function checkSession(req: PodRequest, lookup: PodLookupResult): void {
    const token = req.headers[TOKEN_HEADER];
    if (token === undefined) {
      const pod = lookup.kind === 'found' ? lookup.pod : undefined;
      const v1 = pod ? deps.imdsv1Policy.forPod(pod) : deps.config.imdsv1;
      if (v1 === 'deny') throw reject('missing', 'TOKEN_MISSING');
      return;
    }
    // IMDS answers 403 to a token-bearing GET that carries X-Forwarded-For (K2I PR#279, §3.1).
    if (req.headers['x-forwarded-for'] !== undefined) throw reject('forwarded_for', 'FORWARDED_FOR_REJECTED');
    if (typeof token !== 'string') throw reject('malformed', 'TOKEN_INVALID');
    let check = deps.tokens.verify(token, bindingOf(req, lookup));
    // A pod's first PUT often comes before the kubelet has reported its IP (on a real node the status lags
    // the container's start by up to a PLEG relist, 1 s), so the token was bound to the address alone.
    // Once the pod is known that token still names this address, and is accepted: identity never comes
    // from the token but from the lookup by source IP, so it grants nothing a fresh PUT from the same
    // address would not (test/node/2-clients.test.ts met this with curl, which does not re-PUT on 401).
    if (!check.ok && check.reason === 'bad_signature' && lookup.kind === 'found')
      check = deps.tokens.verify(token, unidentified(req));
    if (!check.ok) throw reject(check.reason, 'TOKEN_INVALID');
  }

  const reject = (reason: string, code: ConstructorParameters<typeof ImdsError>[0]) => {
    deps.metrics.tokenRejections.inc({ reason });
    return new ImdsError(code, reason);
  };

  return {
    async handle(req: PodRequest): Promise<Answer> {
      const started = performance.now();
      const ctx: RequestContext = { route: 'invalid' };
      let answer: Answer;
      try {
        answer = await route(req, ctx);
      } catch (err) {
        answer = errorAnswer(err);
        ctx.reason = err instanceof ImdsError ? (err.detail ?? err.code) : 'internal';
        if (!(err instanceof ImdsError)) deps.logger.error({ err }, 'unexpected error answering a pod');
      }
      record(deps, decisionLoggers, req, ctx, answer, (performance.now() - started) / 1000);
      return answer;
    },
  };
}

const unidentified = (req: PodRequest): TokenBinding => ({ ip: req.sourceIp, uid: '', pod: '' });

function bindingOf(req: PodRequest, lookup: PodLookupResult): TokenBinding {
  if (lookup.kind !== 'found') return unidentified(req);
  return { ip: req.sourceIp, uid: lookup.pod.uid, pod: `${lookup.pod.namespace}/${lookup.pod.name}` };
}

/**
 * Whether a request from a source the pod view does not know yet should wait for the view to catch up
 * (--unknown-pod-wait-ms). Only when the pod's identity could change the answer for the better:
 * - identity paths (credentials, iam/): the pod's role;
 * - token-less (IMDSv1) requests: the pod's namespace may allow or deny IMDSv1.
 * A token-bearing request for any other path is decided by the token alone: a token minted while the
 * source was unknown is bound to the address and verifies whether or not the pod appears meanwhile (see
 * checkSession); one minted for a pod verifies only for that pod, which a lookup finds at once while it
 * is known. Waiting cannot change the answer, so such requests (forwarded, listings, concealed) are
 * answered at once, and a source sending from addresses no pod owns cannot park them for the wait.
 */
function needsWait(req: PodRequest, cls: PathClass): boolean {
  return isIdentityPath(cls) || req.headers[TOKEN_HEADER] === undefined;
}
