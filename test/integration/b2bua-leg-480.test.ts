/**
 * On real Kamailio: a B2BUA device leg to a public GRUU the registrar has no binding for
 * (CR 8.3.2.1 step 8). lab.cfg's PF_FORWARD answers such a leg 480 (route PF_B2BUA_LEG in
 * pf.cfg hands it over with a transaction, so t_reply has one to answer on); the B2BUA's
 * leg gets that 480 at once, over its own TCP connection, and the caller gets the B2BUA's
 * final answer long before the B2BUA's own Timer B (64*T1 = 32 s) would have ended the leg.
 * The device is known to the service only: its REGISTER went to pf.register directly,
 * never through Kamailio's save().
 */
import t from 'tap';
import { Lab, runDir } from '../../lab/lab.js';
import { inviteExpecting } from '../../lab/calls.js';
import { registerText } from '../../lab/service-fixtures.js';
import { b2buaCounts, waitSettled } from '../../lab/b2bua-watch.js';
import { RelayControlClient } from '../../media/relay/control-client.js';
import { rpcCall } from '../unit/service/fixtures/helpers.js';

const dir = runDir('it-b2bua-leg-480');
const lab = await Lab.start({ dir, mode: 'b2bua', b2bua: { multiDevice: 'C' } });
const relay = await RelayControlClient.connect('127.0.0.1', lab.relay!.controlPort);
t.teardown(async () => {
  await relay.close();
  await lab.stop();
});

t.test('a leg to a GRUU with no binding: Kamailio\'s 480 reaches the B2BUA at once', async (t) => {
  const reg = await rpcCall(lab.service.rpcPort, 'pf.register', {
    v: 1, msg: registerText({ user: 'ghost', port: 6999, instance: '00000000-0000-0000-0000-00000000feed' }), src: 'tcp:127.0.0.1:40999',
  });
  t.match(reg.result, { devices: 1 }, 'the service has the device; Kamailio has no binding for it');
  const started = Date.now();
  const r = await inviteExpecting({ dir, sipPort: lab.sipPort, to: 'ghost', timeoutMs: 15_000 }, 480);
  const ms = Date.now() - started;
  t.equal(r.final?.status, 480, 'the caller gets 480: the only leg failed');
  t.ok(ms < 5_000, `promptly (${ms} ms), not after the B2BUA's Timer B`);
  const settled = await waitSettled(() => b2buaCounts(lab.service, relay));
  t.ok(settled.ok, `no call or relay session left (${settled.last})`);
});
