// What every answered request leaves behind: one metric sample and, for decisions, one log line.
import type { Logger } from '../logger.js';
import type { DecisionLog } from './iam.js';
import type { Answer, AppDeps, PodRequest, RouteClass } from './types.js';

/** What routing learnt about a request, for its metric sample and log line. */
export interface RequestContext {
  route: RouteClass;
  path?: string;
  decision?: DecisionLog;
  reason?: string;
}

export function record(
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
export function createDecisionLoggers(logger: Logger) {
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
