// Neither server declares a JSON schema (requests are checked by the pipeline, bodies are refused), so
// fastify's default schema compilers are not needed. Left as defaults, every fastify instance loads ajv
// and fast-json-stringify when it is built: ~3 MB of resident memory for nothing (issue 3 RSS target).
// These compilers refuse, so a schema added later fails loudly at start-up instead of going unchecked.
import type { FastifyServerOptions } from 'fastify';

const refuse = (): never => {
  throw new Error('imdsgate declares no fastify schemas; add a compiler in src/http/no-schemas.ts first');
};

export const NO_SCHEMAS: NonNullable<FastifyServerOptions['schemaController']> = {
  compilersFactory: { buildValidator: () => refuse, buildSerializer: () => refuse },
};
