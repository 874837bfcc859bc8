/** A served user's registered devices, as the device store holds them (docs/service.md "HTTP"). */
import type { FastifyPluginAsync } from 'fastify';
import type { DeviceStore } from '../devices/store.js';
import { deviceKey } from '../devices/identity.js';

export interface DeviceRouteOptions {
  readonly devices: Pick<DeviceStore, 'list'>;
  /** `bob`, `sip:bob@host`, `sip%3Abob%40host` (URL-decoded by the router) -> served-user key; null when not a user. */
  readonly userKey: (raw: string) => string | null;
  readonly now: () => number;
}

export const deviceRoutes: FastifyPluginAsync<DeviceRouteOptions> = async (app, { devices, userKey, now }) => {
  app.get<{ Params: { user: string } }>('/users/:user/devices', async (req, reply) => {
    const aor = userKey(req.params.user);
    if (aor === null) return reply.code(404).send({ error: 'not a user' });
    const list = devices.list(aor, now());
    return { aor, devices: list.map((d) => ({ key: deviceKey(d), ...d })) };
  });
};
