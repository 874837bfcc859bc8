/**
 * The B2BUA's edges, built from the config and started with the decision service
 * (plugin/app.ts; docs/architecture.md says why it shares the service's process): the
 * SIP transport to Kamailio, the transaction layer, the relay link, the tickets, the
 * call store (./store.ts: its own LMDB environment in `<dataDir>/b2bua`, or the shared
 * engine, plugin/shared-state/stores.ts), and the B2BUA itself. On start the stored calls
 * are reloaded and those whose relay session is gone end (docs/b2bua.md "Restart"). On
 * the shared engine the node holds a lease, and ends the calls of nodes whose lease ran
 * out (./takeover.ts, docs/deployment.md §12).
 */
import type { Logger } from 'pino';
import type { Config } from '../config/schema.js';
import { pfUserAgent } from '../rules/b2bua-headers.js';
import { B2bua, type B2buaCounts } from './b2bua.js';
import { openCallStore, openLeases, openPendingStore, nodeIdOf } from '../shared-state/stores.js';
import type { SharedEngine } from '../shared-state/redis.js';
import { Takeover } from './takeover.js';
import { RelayLink } from './relay-link.js';
import { TicketStore, type B2buaPlan } from './tickets.js';
import { RpcError } from '../../wire/errors.js';
import { RpcCode } from '../errors.js';
import { TransactionLayer } from './sip/layer.js';
import { SipTcpTransport } from './sip/transport.js';
import { reliableTimers, SystemClock } from './sip/timers.js';
import { TuRouter } from './sip/tu-router.js';
import { DeliveryDriver } from './deferred/delivery-driver.js';
import type { Device } from '../devices/types.js';

export interface B2buaService {
  readonly b2bua: B2bua;
  readonly tickets: TicketStore;
  /** The SIP listener's port (differs from the config when it says 0). */
  readonly sipPort: number;
  /** Deferred delivery (docs/deferred.md "Delivery"): pending deliveries and their calls. */
  readonly deliveries: DeliveryDriver;
  /** pf.registered: Kamailio saved a binding of `servedUser`; deferred sessions go to its devices. */
  registered(servedUser: string, devices: readonly Device[]): void;
  counts(): B2buaCounts & { tickets: number; relayUp: boolean };
  stop(): Promise<void>;
}

export async function startB2bua(config: Config, log: Logger, now: () => number, engine: SharedEngine | null = null): Promise<B2buaService> {
  const c = config.b2bua;
  const blog = log.child({ component: 'b2bua' });
  const clock = new SystemClock();
  const timers = reliableTimers(c.t1Ms);
  let layer: TransactionLayer | null = null;
  let relayUp = (): boolean => true;
  /**
   * No ticket while the relay is down: pf.invite answers -32001 and Kamailio applies its
   * fail-safe (docs/deployment.md §4) to the new invitation, as when the PF is unavailable.
   */
  class GatedTickets extends TicketStore {
    override issue(plan: B2buaPlan): string {
      if (!relayUp()) throw new RpcError(RpcCode.DependencyFailed, 'media relay unavailable');
      return super.issue(plan);
    }
  }
  const tickets = new GatedTickets(now, { ttlMs: 64 * c.t1Ms });
  const transport = await SipTcpTransport.start(
    {
      listenHost: config.host, listenPort: c.sipPort, proxyHost: c.proxyHost, proxyPort: c.proxyPort, logger: blog,
      onSendError: (f) => blog.warn({ failure: f }, 'b2bua: SIP message not sent'),
    },
    (text) => {
      if (blog.isLevelEnabled('trace')) blog.trace({ line: text.slice(0, text.indexOf('\r')), callId: /^Call-ID:\s*(.*)$/im.exec(text)?.[1] }, 'b2bua: SIP in');
      layer?.receive(text);
    },
  );
  const sentBy = `${config.host}:${transport.port}`;
  let b2bua: B2bua | null = null;
  let deliveries: DeliveryDriver | null = null;
  const relay = new RelayLink(c.relayHost, c.relayPort, (e) => {
    b2bua?.relayEvent(e);
    deliveries?.relayEvent(e);
  }, blog);
  relayUp = () => relay.up;
  const store = openCallStore(config, engine, (err) => blog.error({ err }, 'b2bua: call store write failed'));
  b2bua = new B2bua({
    settings: {
      sentBy,
      contact: `sip:pf-b2bua@${sentBy};transport=tcp`,
      outboundProxy: `sip:${c.proxyHost}:${c.proxyPort};transport=tcp;lr`,
      legToken: c.legToken,
      sessionExpires: Math.max(c.sessionExpires, c.minSE),
      minSE: c.minSE,
      timerUnitMs: c.sessionTimerUnitMs,
      userAgent: pfUserAgent(c.release, ['cpm-pf']) ?? `CPM-serv/${c.release}`,
      policy: (user) => c.multiDeviceByUser[user] ?? c.multiDevice,
      directDelivery: c.directDelivery,
      isfUri: config.policy.interworkingOnFailure ? config.policy.isfUri : null,
      maxRedirects: c.maxRedirects,
      maxSessionAgeMs: c.maxSessionAgeS * 1000,
      pfHost: config.pfHost,
    },
    relay, tickets, clock, timers, log: blog, send: (text) => transport.send(text), store, wallNow: now,
  });
  const b = b2bua;
  const pending = openPendingStore(config, engine, (key, why) => blog.warn({ key, why }, 'deferred: stored entry skipped'));
  const d = new DeliveryDriver({
    settings: {
      sentBy, contact: `sip:pf-b2bua@${sentBy};transport=tcp`, outboundProxy: `sip:${c.proxyHost}:${c.proxyPort};transport=tcp;lr`,
      legToken: c.legToken, sessionExpires: Math.max(c.sessionExpires, c.minSE), userAgent: pfUserAgent(c.release, ['cpm-pf']) ?? `CPM-serv/${c.release}`,
      lingerMs: c.deliveryLingerMs,
    },
    relay, store: pending, clock, log: blog, layer: (): TransactionLayer => l, wallNow: now,
    offerLive: (user, device) => void b.deviceRegistered(user, device),
    liveDeferred: (user) => b.deferredCalls(user).map((r) => r.deferredId),
    // several nodes on the engine: one node delivers an entry at a time (./deferred/claim.ts)
    node: nodeIdOf(config), leases: openLeases(config, engine) ?? undefined,
  });
  deliveries = d;
  b.onDeferred = (r) => void d.deferred(r);
  b.onDeferredEnded = (r) => d.callerLeft(r); // awaited before the call's record is deleted (docs/deferred.md "Restart")
  const l = new TransactionLayer({ clock, timers, send: (text) => transport.send(text) }, new TuRouter(b, [d]), (err) => blog.error({ err }, 'b2bua: SIP layer error'));
  b.layer = l;
  // on the engine: the node's lease first, so that no survivor takes what restore reloads
  const leases = openLeases(config, engine);
  const takeover = leases
    ? new Takeover({
      node: nodeIdOf(config), store, leases, leaseMs: config.sharedState.leaseMs, log: blog,
      // as after a restart whose relay lost the sessions (docs/b2bua.md "Restart")
      end: async (calls) => {
        await b.restore(calls);
        for (const c of calls) b.relayGone(c.callId);
      },
    })
    : null;
  await takeover?.beat();
  // the calls of before a restart answer again once the layer takes messages
  await b.restore();
  layer = l;
  relay.onLost = () => {
    void b.checkRelay();
    d.relayLost();
  };
  await relay.warm();
  await b.checkRelay();
  await d.start();
  await takeover?.start();
  blog.info({ sipPort: transport.port, proxy: `${c.proxyHost}:${c.proxyPort}`, relay: `${c.relayHost}:${c.relayPort}` }, 'b2bua ready');
  return {
    b2bua: b,
    tickets,
    sipPort: transport.port,
    deliveries: d,
    registered: (user, devices) => d.registered(user, devices),
    counts: () => ({ ...b.counts, tickets: tickets.size, relayUp: relay.up }),
    async stop() {
      blog.info({ layer: layer?.counts }, 'b2bua: SIP layer counts');
      takeover?.stop();
      await b.stop();
      await d.stop();
      await relay.close();
      await transport.close();
      await store.close();
      await pending.close();
    },
  };
}
