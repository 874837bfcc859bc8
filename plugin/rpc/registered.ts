/**
 * `pf.registered` (docs/jsonrpc.md): pf.cfg's notification that Kamailio saved a REGISTER's
 * bindings (route PF_REGISTERED, after `save("location")` succeeded). It is the deferred
 * delivery trigger (docs/deferred.md "Trigger and order"): a leg INVITE to a device's
 * GRUU needs the registrar's binding, which `pf.register` (run before save()) cannot
 * promise. A REGISTER that saved nothing new for delivery to use triggers nothing.
 */
import type { RegisterUpdate } from '../sip/register.js';

/**
 * Whether a saved REGISTER makes the served user's deferred sessions worth delivering:
 * it added or refreshed at least one binding (RFC 3261 §10.2.1, §10.2.4). A query
 * (§10.2.3), `Contact: *` (§10.2.2) and a REGISTER whose every Contact has expires 0 do
 * not. Pure.
 */
export function triggersDelivery(update: RegisterUpdate): boolean {
  return update.kind === 'update' && update.upsert.length > 0;
}
