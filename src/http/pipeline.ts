// The request path, one way: canonical path → class → method → token / IMDSv1 policy → answer
// (agent-made for tokens and IAM paths, upstream for allowed paths, 404 for the rest). Framework-free,
// so app.ts stays a thin fastify adapter. Never throws: every outcome becomes an Answer, one metric
// sample and, for decisions, one log line.
import { ImdsError } from '../errors.js';
import { canonicalize, toWire } from '../imds/canonical.js';
import { createListingFilter } from '../imds/listing.js';
import { createPathPolicy, type PathClass, type PathPolicy } from '../imds/paths.js';
import { TOKEN_HEADER, TTL_HEADER, parseTtl, type TokenBinding } from '../imds/tokens.js';
import type { PodLookupResult } from '../pods/types.js';
import { errorAnswer } from './answers.js';
import type { Logger } from '../logger.js';
import { answerIam, podHasRole, type DecisionLog } from './iam.js';
import type { Answer, AppDeps, PodRequest, RouteClass } from './types.js';

export interface RequestContext {
  route: RouteClass;
  path?: string;
  decision?: DecisionLog;
  reason?: string;
}

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

type Target =
  | { readonly ok: false; readonly reason: string }
  | {
      readonly ok: true;
      readonly path: string;
      readonly cls: PathClass;
      readonly route: RouteClass;
      readonly wire: string;
      /** A directory whose forwarded listing is filtered. */
      readonly dir: boolean;
    };

/** Targets remembered at most, and only short ones; the memo is dropped whole when full. */
const MAX_MEMO_TARGETS = 1024;
const MAX_MEMO_TARGET_LENGTH = 256;

/**
 * canonicalize → classify → toWire, remembered per raw target. All three are pure functions of the
 * target (and the policy, fixed for the pipeline's life), and pods ask for the same few paths again and
 * again, so the memo changes no answer; it only skips re-deriving them (a tenth of a cached credential
 * request's CPU). Bounded, so distinct targets from a hostile pod cannot grow it.
 */
function createTargetMemo(policy: PathPolicy) {
  const memo = new Map<string, Target>();
  const derive = (target: string): Target => {
    const canon = canonicalize(target);
    if (!canon.ok) return canon;
    const cls = policy.classify(canon.path);
    const dir = policy.isDirectory(canon.path);
    return { ok: true, path: canon.path, cls, route: routeOf(cls), wire: toWire(canon.path), dir };
  };
  return {
    get(target: string): Target {
      let t = memo.get(target);
      if (t !== undefined) return t;
      t = derive(target);
      if (target.length <= MAX_MEMO_TARGET_LENGTH) {
        if (memo.size >= MAX_MEMO_TARGETS) memo.clear();
        memo.set(target, t);
      }
      return t;
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

function isIdentityPath(cls: PathClass): boolean {
  return (
    cls.kind === 'credentials-list' ||
    cls.kind === 'credentials-role' ||
    cls.kind === 'iam-info' ||
    cls.kind === 'iam-list'
  );
}

function routeOf(cls: PathClass): RouteClass {
  switch (cls.kind) {
    case 'token':
      return 'token';
    case 'credentials-list':
    case 'credentials-role':
      return 'credentials';
    case 'iam-info':
    case 'iam-list':
      return 'iam';
    case 'forward':
      return 'forward';
    case 'version-listing':
      return 'listing';
    case 'concealed':
      return 'concealed';
    case 'refused':
      return 'invalid';
  }
}

function record(
  deps: AppDeps,
  decisionLoggers: ReturnType<typeof createDecisionLoggers>,
  req: PodRequest,
  ctx: RequestContext,
  a: Answer,
  seconds: number,
): void {
  const method = METHODS.has(req.method) ? req.method : 'OTHER';
  deps.metrics.requests.inc({ route: ctx.route, method, status: STATUS[a.status] ?? String(a.status) });
  deps.metrics.requestDuration.observe({ route: ctx.route }, seconds);
  const d = ctx.decision;
  const level = d !== undefined ? 'info' : a.status >= 500 ? 'warn' : 'debug';
  if (!deps.logger.isLevelEnabled(level)) return;
  // A flat object of fixed shape (pino skips undefined values): cheaper than spreads.
  const line = {
    ip: req.sourceIp,
    method,
    path: ctx.path,
    route: ctx.route,
    status: a.status,
    latencyMs: Math.round(seconds * 1e6) / 1e3,
    reason: ctx.reason,
  };
  if (d !== undefined) decisionLoggers.for(d).info(line, 'decision');
  else deps.logger[level](line, a.status >= 500 ? 'request failed' : 'request');
}

/**
 * One pino child per decision (DecisionLog objects are reused while a pod's decision is unchanged, see
 * iam.ts), so a decision line serialises the pod, role and outcome fields once, not on every request.
 * The line carries the same fields as before; the decision fields now come first.
 */
function createDecisionLoggers(logger: Logger) {
  const children = new WeakMap<DecisionLog, Logger>();
  return {
    for(d: DecisionLog): Logger {
      let child = children.get(d);
      if (child === undefined) children.set(d, (child = logger.child({ ...d })));
      return child;
    },
  };
}

/** Status label strings for the statuses the front door answers with, made once. */
const STATUS: Record<number, string> = Object.fromEntries(
  [200, 400, 401, 403, 404, 405, 413, 429, 431, 500, 502, 503, 504].map((s) => [s, String(s)]),
);

const METHODS = new Set(['GET', 'HEAD', 'PUT', 'POST', 'DELETE', 'PATCH', 'OPTIONS', 'TRACE']);
