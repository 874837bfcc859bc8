/** The transaction layer with a TU that records what it is given; the tests play the B2BUA. */
import { TransactionLayer, type ServerTransaction } from '../../../../plugin/b2bua/sip/layer.js';
import type { InviteServerTransaction } from '../../../../plugin/b2bua/sip/invite-server.js';
import type { Header } from '../../../../plugin/b2bua/sip/build.js';
import type { SipRequest } from '../../../../plugin/sip/message.js';
import { harness } from './helpers.js';

export const CONTACT: Header = ['Contact', '<sip:b2bua@127.0.0.1:5070;transport=tcp>'];

export type Setup = ReturnType<typeof setup>;

/** A layer whose TU records what it is given; `throwOn`: a method the TU throws on. */
export function setup(throwOn?: string) {
  const h = harness();
  const calls = { requests: [] as [SipRequest, ServerTransaction][], acks: [] as SipRequest[], cancels: [] as InviteServerTransaction[], noAcks: 0 };
  const errors: unknown[] = [];
  const layer = new TransactionLayer(h.ctx, {
    request: (r, tx) => {
      if (r.method === throwOn) throw new Error('TU bug');
      calls.requests.push([r, tx]);
    },
    ack: (r) => void calls.acks.push(r),
    cancel: (tx) => void calls.cancels.push(tx),
    noAck: () => void calls.noAcks++,
  }, (e) => void errors.push(e));
  const wire = () => h.lines().map((l) => l.replace(/ sip:\S+ SIP\/2\.0$/, '').replace(/^SIP\/2\.0 (\d+).*$/, '$1'));
  return { h, layer, calls, errors, wire };
}
