// The fastify adapter: one catch-all route hands the raw request to the pipeline. fastify's own parsing
// is narrowed so that nothing it does can reach a pod as a non-IMDS answer or crash the process:
// - the raw target (request.url, never a router-decoded form) is what the pipeline canonicalises;
// - request bodies are refused before parsing (IMDS requests have none);
// - parser-level failures (bad method, header overflow, chunked garbage) get an IMDS-shaped 4xx written
//   straight to the socket by clientErrorHandler;
// - router-level failures (undecodable URL) and unregistered methods go through the same pipeline/answers.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { ImdsError, type ErrorCode } from '../errors.js';
import { SERVER_HEADER, errorAnswer, rawErrorResponse } from './answers.js';
import { installLimits, type FrontDoorLimits } from './limits.js';
import { NO_SCHEMAS } from './no-schemas.js';
import { createPipeline } from './pipeline.js';
import type { Answer, AppDeps } from './types.js';

export type { AppDeps } from './types.js';

export function buildApp(deps: AppDeps): FastifyInstance {
  const pipeline = createPipeline(deps);
  const app = fastify({
    logger: false,
    // Slow or stuck clients must not hold sockets: IMDS clients answer within a second (§0.5).
    // Node checks headersTimeout/requestTimeout only every connectionsCheckingInterval (default 30 s):
    // check every second so that the deadlines hold to the second (limits.ts sets headersTimeout).
    requestTimeout: 10_000,
    keepAliveTimeout: 5_000,
    // Node answers an HTTP/1.1 request without Host with its own bare 400; the onRequest hook below
    // answers it instead, in IMDS form (RFC 9112 §3.2 still gets its 400).
    http: { connectionsCheckingInterval: 1_000, requireHostHeader: false },
    bodyLimit: 1024,
    routerOptions: { maxParamLength: 2048 },
    return503OnClosing: true,
    exposeHeadRoutes: false,
    schemaController: NO_SCHEMAS,
    clientErrorHandler: (err: Error & { code?: string }, socket: Socket) =>
      onClientError(err, socket, limits),
    frameworkErrors: (_err, _req, reply) => send(reply, errorAnswer(new ImdsError('PATH_NOT_CANONICAL'))),
  });

  const limits = installLimits(app.server, deps.config, deps);
  // A client may send its whole request and then shut down its write side (curl --no-keepalive, shell
  // `printf ... | nc`): HTTP/1.1 lets it wait for the answer (RFC 9112 §9.6). Node's HTTP server aborts
  // the request and ends the socket on the client's FIN unless httpAllowHalfOpen is set (socketOnEnd in
  // node:_http_server; the net.Server under it is created with allowHalfOpen: true). With it, the answer
  // is sent and the socket closed after it; a FIN with no request pending still closes at once.
  (app.server as { httpAllowHalfOpen?: boolean }).httpAllowHalfOpen = true;
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', (_req, _payload, done) =>
    done(new ImdsError('PAYLOAD_TOO_LARGE'), undefined),
  );
  // Callback style, not async: this runs on every request and an async hook costs a promise per request.
  app.addHook('onRequest', (req, reply, done) => {
    const noHost = req.raw.httpVersion === '1.1' && req.headers.host === undefined;
    if (!noHost && !hasBody(req)) return done();
    reply.header('connection', 'close');
    send(reply, errorAnswer(new ImdsError(noHost ? 'BAD_REQUEST' : 'PAYLOAD_TOO_LARGE')));
  });

  const handler = async (req: FastifyRequest, reply: FastifyReply) => {
    const sourceIp = req.socket.remoteAddress ?? '';
    if (!limits.beginRequest(sourceIp)) return send(reply, errorAnswer(new ImdsError('TOO_MANY_REQUESTS')));
    try {
      const { method, url: target, headers } = req;
      return send(
        reply,
        await pipeline.handle({ method, target, sourceIp, connection: req.socket, headers }),
      );
    } finally {
      limits.endRequest(sourceIp);
    }
  };
  // CONNECT never reaches a route in Node; answer it instead of dropping the socket silently.
  app.server.on('connect', (_req: unknown, socket: Socket) =>
    socket.end(rawErrorResponse('METHOD_NOT_ALLOWED')),
  );
  // An Expect other than 100-continue makes Node answer a bare 417 itself (no Server header, no IMDS
  // body). RFC 9110 §10.1.1 lets a server ignore an expectation it does not support: the request takes
  // the usual path and gets the usual answer.
  app.server.on('checkExpectation', (req: IncomingMessage, res: ServerResponse) =>
    app.server.emit('request', req, res),
  );
  app.all('*', handler);
  app.setNotFoundHandler(handler);
  app.setErrorHandler((err: Error & { statusCode?: number }, _req, reply) => {
    if (err instanceof ImdsError) return send(reply, errorAnswer(err));
    const status = err.statusCode ?? 500;
    if (status >= 500) deps.logger.error({ err }, 'front door error');
    return send(reply, errorAnswer(new ImdsError(codeForStatus(status), err.message)));
  });
  return app;
}

function send(reply: FastifyReply, a: Answer): FastifyReply {
  reply.code(a.status).header('server', SERVER_HEADER);
  if (a.contentType !== undefined) reply.header('content-type', a.contentType);
  if (a.headers !== undefined) reply.headers(a.headers);
  return reply.send(a.body);
}

function hasBody(req: FastifyRequest): boolean {
  const len = req.headers['content-length'];
  return req.headers['transfer-encoding'] !== undefined || (len !== undefined && len !== '0');
}

function codeForStatus(status: number): ErrorCode {
  if (status === 413) return 'PAYLOAD_TOO_LARGE';
  if (status === 405) return 'METHOD_NOT_ALLOWED';
  if (status === 431) return 'HEADERS_TOO_LARGE';
  return status >= 500 ? 'INTERNAL_ERROR' : 'BAD_REQUEST';
}

/**
 * Node's HTTP parser rejected the bytes, or the request head missed its deadline
 * (ERR_HTTP_REQUEST_TIMEOUT, from headersTimeout/requestTimeout): answer once, in IMDS form, and close.
 */
function onClientError(err: Error & { code?: string }, socket: Socket, limits: FrontDoorLimits): void {
  if (err.code === 'ECONNRESET' || socket.destroyed) return;
  const timedOut = err.code === 'ERR_HTTP_REQUEST_TIMEOUT';
  if (timedOut) limits.refused('request_timeout', socket.remoteAddress ?? '');
  const code: ErrorCode = timedOut
    ? 'REQUEST_TIMEOUT'
    : err.code === 'HPE_HEADER_OVERFLOW'
      ? 'HEADERS_TOO_LARGE'
      : 'BAD_REQUEST';
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  if (timedOut) {
    socket.end(rawErrorResponse(code)); // nothing more is coming: close at once
    return;
  }
  // Lingering close (RFC 9112 §9.6): closing while the client's request is still arriving makes the kernel
  // answer with a reset, which can discard our answer before the client reads it (Node 24 closes such
  // sockets at once). So answer, read and drop what still comes until the client's FIN, then close; a
  // client that keeps sending is cut off after LINGER_MS.
  socket.write(rawErrorResponse(code));
  socket.on('data', () => undefined);
  socket.once('end', () => socket.end());
  socket.resume();
  setTimeout(() => socket.destroy(), LINGER_MS).unref();
}

const LINGER_MS = 1000;
