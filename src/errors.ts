// The error catalog: every error the agent can answer a pod with has a stable code, an HTTP status and
// a message. One handler (http/) turns them into IMDS-shaped responses; docs/errors.md is kept in step
// by a unit test. Bodies copy the XHTML template IMDS uses for 400/401/403/404 (docs/protocol.md §2);
// nothing in a body names a pod, an IP, a role or an upstream address.

export const ERRORS = {
  BAD_REQUEST: { status: 400, message: 'Malformed request' },
  PATH_NOT_CANONICAL: { status: 400, message: 'Request target has no single canonical path' },
  TOKEN_TTL_INVALID: { status: 400, message: 'Missing or Invalid Parameters' },
  TOKEN_MISSING: { status: 401, message: 'IMDSv1 is not allowed for this pod: use an IMDSv2 token' },
  TOKEN_INVALID: { status: 401, message: 'Token is invalid, expired or belongs to another caller' },
  FORWARDED_FOR_REJECTED: { status: 403, message: '' },
  TOKEN_PATH_VERSIONED: { status: 403, message: 'Tokens are issued only at /latest/api/token' },
  NOT_FOUND: { status: 404, message: 'Not Found' },
  PATH_CONCEALED: { status: 404, message: 'Not Found' },
  POD_UNKNOWN: { status: 404, message: 'Not Found' },
  ROLE_DENIED: { status: 404, message: 'Not Found' },
  ROLE_MISMATCH: { status: 404, message: 'Not Found' },
  METHOD_NOT_ALLOWED: { status: 405, message: 'Method Not Allowed' },
  REQUEST_TIMEOUT: { status: 408, message: 'Request head not received in time' },
  PAYLOAD_TOO_LARGE: { status: 413, message: 'Request body not allowed' },
  // IMDS itself answers 429 when a caller is throttled, and SDKs retry it with back-off:
  // https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/instancedata-data-retrieval.html#instancedata-throttling
  TOO_MANY_REQUESTS: { status: 429, message: 'Too many connections or requests from this source' },
  HEADERS_TOO_LARGE: { status: 431, message: 'Request header fields too large' },
  INTERNAL_ERROR: { status: 500, message: 'Internal Server Error' },
  UPSTREAM_UNAVAILABLE: { status: 502, message: 'Metadata service unavailable' },
  UPSTREAM_INVALID: { status: 502, message: 'Metadata service gave an invalid answer' },
  CREDENTIALS_UNAVAILABLE: { status: 503, message: 'Credentials temporarily unavailable' },
  NOT_READY: { status: 503, message: 'Agent not ready' },
  UPSTREAM_TIMEOUT: { status: 504, message: 'Metadata service timed out' },
} as const satisfies Record<string, { status: number; message: string }>;

export type ErrorCode = keyof typeof ERRORS;

/** An error meant for the caller: code and status come from the catalog, detail stays in logs. */
export class ImdsError extends Error {
  readonly status: number;
  constructor(
    readonly code: ErrorCode,
    readonly detail?: string,
    options?: { cause?: unknown },
  ) {
    super(detail ?? ERRORS[code].message, options);
    this.name = 'ImdsError';
    this.status = ERRORS[code].status;
  }
}

export const isImdsError = (e: unknown): e is ImdsError => e instanceof ImdsError;

const REASON: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  408: 'Request Timeout',
  413: 'Payload Too Large',
  429: 'Too Many Requests',
  431: 'Request Header Fields Too Large',
  500: 'Internal Server Error',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
  504: 'Gateway Timeout',
};

/** The IMDS error page for a status. 403 on a forwarded-for PUT is empty, as IMDS sends it. */
export function imdsErrorBody(code: ErrorCode): string {
  const { status } = ERRORS[code];
  if (code === 'FORWARDED_FOR_REJECTED') return '';
  const title = `${status} - ${REASON[status] ?? 'Error'}`;
  return (
    '<?xml version="1.0" encoding="iso-8859-1"?>\n' +
    '<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Transitional//EN"\n' +
    '         "http://www.w3.org/TR/xhtml1/DTD/xhtml1-transitional.dtd">\n' +
    '<html xmlns="http://www.w3.org/1999/xhtml" xml:lang="en" lang="en">\n' +
    ' <head>\n' +
    `  <title>${title}</title>\n` +
    ' </head>\n' +
    ' <body>\n' +
    `  <h1>${title}</h1>\n` +
    ' </body>\n' +
    '</html>\n'
  );
}
