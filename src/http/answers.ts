// Turning errors into IMDS-shaped answers. Bodies come from the error catalog (errors.ts) and never carry
// the detail, which stays in the log. Server: EC2ws is what IMDS sends and what kube2iam copies (§2).
import { ERRORS, ImdsError, imdsErrorBody, type ErrorCode } from '../errors.js';
import type { Answer } from './types.js';

export const SERVER_HEADER = 'EC2ws';

export function errorAnswer(err: unknown): Answer {
  const code: ErrorCode = err instanceof ImdsError ? err.code : 'INTERNAL_ERROR';
  if (code === 'FORWARDED_FOR_REJECTED') {
    // docs/protocol.md §2: 403, text/plain, content-length 0.
    return { status: 403, contentType: 'text/plain', body: '' };
  }
  return { status: ERRORS[code].status, contentType: 'text/html', body: imdsErrorBody(code) };
}

/** A complete HTTP/1.1 error response for a socket the HTTP parser gave up on. */
export function rawErrorResponse(code: ErrorCode): string {
  const body = imdsErrorBody(code);
  const { status } = ERRORS[code];
  const reason = /<title>\d+ - (.*)<\/title>/.exec(body)?.[1] ?? 'Error';
  return (
    `HTTP/1.1 ${status} ${reason}\r\nServer: ${SERVER_HEADER}\r\nContent-Type: text/html\r\n` +
    `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`
  );
}
