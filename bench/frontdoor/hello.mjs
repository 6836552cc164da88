// Calibration for bench/frontdoor/run.mjs: the smallest fastify server, pinned to the agent's core, so
// the agent's numbers can be read as a ratio of what that core gives a do-nothing server in the same run.
import fastify from 'fastify';

const app = fastify({ logger: false });
app.get('/*', async (_req, reply) => reply.type('text/plain').send('i-0123456789abcdef0'));
await app.listen({ host: '127.0.0.1', port: Number(process.argv[2]) });
