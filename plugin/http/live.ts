/**
 * The live view's routes (docs/service.md "Live view", docs/lab.md "Live view"): the page,
 * and the JSON it polls. Registered only when `live.enabled`.
 *
 *   GET /lab/live               the page (plugin/live/live.html: plain HTML and JS, no build)
 *   GET /lab/live/state         calls, sessions, devices and counters in one answer
 *   GET /lab/live/calls         recent calls, newest first
 *   GET /lab/live/calls/:id     one call's ladder (id: the caller's Call-ID or a leg's)
 *   GET /lab/live/devices       registered devices per user, with tags and GRUUs
 *   GET /sessions               the sessions in progress (from the trace) and the B2BUA's own call table
 */
import { readFileSync } from 'node:fs';
import type { FastifyPluginAsync } from 'fastify';
import { Type } from '@sinclair/typebox';
import type { LiveView } from '../live/view.js';
import { summary } from '../live/ladder.js';
import { CallSummarySchema, LadderSchema, LiveStateSchema, SessionsSchema, UserDevicesSchema } from '../live/schema.js';

export interface LiveRouteOptions {
  readonly live: LiveView;
  readonly now: () => number;
}

const B2buaSessionSchema = Type.Object({
  callId: Type.String(),
  servedUser: Type.String(),
  state: Type.String(),
  legs: Type.Array(Type.Object({ id: Type.String(), device: Type.Union([Type.String(), Type.Null()]), state: Type.String() })),
});
const SessionsWithB2buaSchema = Type.Composite([SessionsSchema, Type.Object({ b2bua: Type.Union([Type.Array(B2buaSessionSchema), Type.Null()]) })]);

const PAGE = new URL('../live/live.html', import.meta.url);

export const liveRoutes: FastifyPluginAsync<LiveRouteOptions> = async (app, { live, now }) => {
  const page = readFileSync(PAGE, 'utf8');
  app.get('/lab/live', async (_req, reply) => reply.type('text/html; charset=utf-8').header('cache-control', 'no-store').send(page));

  app.get('/lab/live/state', { schema: { response: { 200: LiveStateSchema } } }, async () => live.state(now()));

  app.get('/lab/live/calls', { schema: { response: { 200: Type.Array(CallSummarySchema) } } }, async () => live.store.calls().map(summary));

  app.get<{ Params: { id: string } }>(
    '/lab/live/calls/:id',
    { schema: { params: Type.Object({ id: Type.String({ minLength: 1, maxLength: 1024 }) }), response: { 200: LadderSchema } } },
    async (req, reply) => {
      const ladder = live.ladder(req.params.id, now());
      if (ladder === null) return reply.code(404).send({ error: 'no such call' });
      return ladder;
    },
  );

  app.get('/lab/live/devices', { schema: { response: { 200: Type.Array(UserDevicesSchema) } } }, async () => live.users(now()));

  // the B2BUA's own table (B2bua.sessions) when it runs, else null
  app.get('/sessions', { schema: { response: { 200: SessionsWithB2buaSchema } } }, async () => ({
    ...live.sessions(now()), b2bua: live.b2bua?.sessions?.() ?? null,
  }));
};
