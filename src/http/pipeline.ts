// The request path, one way: canonical path → class → method → token / IMDSv1 policy → answer
// (agent-made for tokens and IAM paths, upstream for allowed paths, 404 for the rest). Framework-free,
// so app.ts stays a thin fastify adapter. Never throws: every outcome becomes an Answer, one metric
// sample and, for decisions, one log line.
import { ImdsError } from '../errors.js';
import { canonicalize, toWire } from '../imds/canonical.js';
import { createPathPolicy, type PathClass } from '../imds/paths.js';
import { TOKEN_HEADER, TTL_HEADER, parseTtl, type TokenBinding } from '../imds/tokens.js';
import type { PodLookupResult } from '../pods/types.js';
import { errorAnswer } from './answers.js';
import { answerIam, type DecisionLog } from './iam.js';
import type { Answer, AppDeps, PodRequest, RouteClass } from './types.js';

export interface RequestContext {
  route: RouteClass;
  path?: string;
  decision?: DecisionLog;
  reason?: string;
}

export function createPipeline(deps: AppDeps) {
  const policy = createPathPolicy({ allow: deps.config.allowPath, deny: deps.config.denyPath });

  async function route(req: PodRequest, ctx: RequestContext): Promise<Answer> {
    const canon = canonicalize(req.target);
    if (!canon.ok) throw new ImdsError('PATH_NOT_CANONICAL', canon.reason);
    ctx.path = canon.path;
    const cls = policy.classify(canon.path);
    ctx.route = routeOf(cls);
    if (cls.kind === 'refused') throw new ImdsError('PATH_NOT_CANONICAL', cls.reason);
    if (cls.kind === 'token') return mintToken(req, cls.versioned);
    if (req.method !== 'GET' && req.method !== 'HEAD') throw new ImdsError('METHOD_NOT_ALLOWED', req.method);
    const lookup = await deps.podLookup.byIp(req.sourceIp);
    checkSession(req, lookup);
    switch (cls.kind) {
      case 'concealed':
        throw new ImdsError('PATH_CONCEALED', cls.reason);
      case 'forward':
      case 'version-listing':
        // HEAD goes upstream as GET; Node drops the body and the headers stay those of a GET (§13 #14).
        return forward(canon.path);
      default:
        return answerIam(deps, cls, lookup, ctx);
    }
  }

  async function forward(path: string): Promise<Answer> {
    const res = await deps.upstream.forward('GET', toWire(path));
    return {
      status: res.status,
      body: res.body,
      ...(res.contentType ? { contentType: res.contentType } : {}),
    };
  }

  async function mintToken(req: PodRequest, versioned: boolean): Promise<Answer> {
    if (req.method !== 'PUT') throw new ImdsError('METHOD_NOT_ALLOWED', `${req.method} on the token path`);
    if (versioned) throw reject('versioned', 'TOKEN_PATH_VERSIONED');
    // IMDS refuses a token PUT that went through a proxy (UG-v2; imds-protocol.md §0.2, §13 #9).
    if (req.headers['x-forwarded-for'] !== undefined) throw reject('forwarded_for', 'FORWARDED_FOR_REJECTED');
    const ttl = parseTtl(req.headers[TTL_HEADER]);
    if (ttl === undefined) throw reject('ttl_invalid', 'TOKEN_TTL_INVALID');
    const token = deps.tokens.mint(bindingOf(req, await deps.podLookup.byIp(req.sourceIp)), ttl);
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
    const check = deps.tokens.verify(token, bindingOf(req, lookup));
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
      record(deps, req, ctx, answer, (performance.now() - started) / 1000);
      return answer;
    },
  };
}

function bindingOf(req: PodRequest, lookup: PodLookupResult): TokenBinding {
  if (lookup.kind !== 'found') return { ip: req.sourceIp, uid: '', pod: '' };
  return { ip: req.sourceIp, uid: lookup.pod.uid, pod: `${lookup.pod.namespace}/${lookup.pod.name}` };
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

function record(deps: AppDeps, req: PodRequest, ctx: RequestContext, a: Answer, seconds: number): void {
  const method = METHODS.has(req.method) ? req.method : 'OTHER';
  deps.metrics.requests.inc({ route: ctx.route, method, status: String(a.status) });
  deps.metrics.requestDuration.observe({ route: ctx.route }, seconds);
  const level = ctx.decision !== undefined ? 'info' : a.status >= 500 ? 'warn' : 'debug';
  if (!deps.logger.isLevelEnabled(level)) return;
  const line = {
    ip: req.sourceIp,
    method,
    path: ctx.path,
    route: ctx.route,
    status: a.status,
    latencyMs: Math.round(seconds * 1e6) / 1e3,
    ...(ctx.reason !== undefined ? { reason: ctx.reason } : {}),
    ...ctx.decision,
  };
  deps.logger[level](
    line,
    ctx.decision !== undefined ? 'decision' : a.status >= 500 ? 'request failed' : 'request',
  );
}

const METHODS = new Set(['GET', 'HEAD', 'PUT', 'POST', 'DELETE', 'PATCH', 'OPTIONS', 'TRACE']);
