/**
 * The four transactions (RFC 3261 §17, RFC 6026) driven by event tables on the fake
 * clock: each row is a list of events, the state it ends in, what went on the wire
 * (method or status) and what the TU saw.
 */
import t from 'tap';
import { printRequest, responseTo } from '../../../../plugin/b2bua/sip/build.js';
import { InviteClientTransaction } from '../../../../plugin/b2bua/sip/invite-client.js';
import { NonInviteClientTransaction } from '../../../../plugin/b2bua/sip/non-invite-client.js';
import { InviteServerTransaction } from '../../../../plugin/b2bua/sip/invite-server.js';
import { NonInviteServerTransaction } from '../../../../plugin/b2bua/sip/non-invite-server.js';
import { answer, harness, incoming, req, res } from './helpers.js';

/** A status to receive or send, `+ms` to let time pass, `tcp` for a transport error, `req`/`ack` for a request. */
type Ev = number | `+${number}` | 'tcp' | 'req' | 'ack';

function wire(text: string): string {
  const first = text.slice(0, text.indexOf('\r\n'));
  return first.startsWith('SIP/2.0 ') ? first.split(' ')[1]! : first.split(' ')[0]!;
}

function outgoing(method: string) {
  const h = [
    ['Via', 'SIP/2.0/TCP 127.0.0.1:5070;branch=z9hG4bKout1'], ['Max-Forwards', '70'], ['From', '<sip:pf@example.net>;tag=pf1'],
    ['To', '<sip:bob@example.net>'], ['Call-ID', 'leg-1'], ['CSeq', `1 ${method}`], ['Contact', '<sip:b2bua@127.0.0.1:5070;transport=tcp>'],
  ] as const;
  return printRequest(method, 'sip:bob@10.0.0.20', h);
}

const INVITE_CLIENT: [string, Ev[], string, string[], string[]][] = [
  ['sent, nothing back', [], 'calling', ['INVITE'], []],
  ['Timer B in Calling: timeout', ['+31999', '+1'], 'terminated', ['INVITE'], ['timeout', 'terminated']],
  ['1xx: Proceeding, Timer B no longer runs', [180, '+40000'], 'proceeding', ['INVITE'], ['180']],
  ['2xx: Accepted, Timer M ends it', [180, 200, '+32000'], 'terminated', ['INVITE'], ['180', '200', 'terminated']],
  ['2xx retransmissions and forks in Accepted go to the TU', [200, 200, 200], 'accepted', ['INVITE'], ['200', '200', '200']],
  ['non-2xx in Accepted is dropped', [200, 486], 'accepted', ['INVITE'], ['200']],
  ['non-2xx: ACK, TU, Timer D = 0 ends it', [180, 486], 'terminated', ['INVITE', 'ACK'], ['180', '486', 'terminated']],
  ['non-2xx straight from Calling', [603], 'terminated', ['INVITE', 'ACK'], ['603', 'terminated']],
  ['transport error', [180, 'tcp'], 'terminated', ['INVITE'], ['180', 'timeout', 'terminated']],
  ['responses after the end are dropped', [486, 200, 180], 'terminated', ['INVITE', 'ACK'], ['486', 'terminated']],
];

t.test('INVITE client transaction (§17.1.1, RFC 6026 §7.2)', async (t) => {
  for (const [name, events, state, onWire, tu] of INVITE_CLIENT) {
    const h = harness();
    const log: string[] = [];
    const invite = outgoing('INVITE');
    const tx = new InviteClientTransaction(h.ctx, invite, {
      response: (r) => log.push(String(r.status)),
      timeout: () => log.push('timeout'),
      terminated: () => log.push('terminated'),
    });
    tx.start();
    for (const e of events) {
      if (typeof e === 'number') tx.receiveResponse(res(answer(invite.msg, { status: e })));
      else if (e === 'tcp') tx.transportError();
      else if (e.startsWith('+')) h.clock.advance(Number(e.slice(1)));
    }
    t.equal(tx.state, state, `${name}: state`);
    t.same(h.sent.map(wire), onWire, `${name}: wire`);
    t.same(log, tu, `${name}: TU`);
    if (state === 'terminated') t.equal(h.clock.pending, 0, `${name}: no timer left`);
  }
});

const NON_INVITE_CLIENT: [string, Ev[], string, string[]][] = [
  ['sent', [], 'trying', []],
  ['Timer F: timeout', ['+32000'], 'terminated', ['timeout', 'terminated']],
  ['1xx then final, Timer K = 0', [100, 180, 200], 'terminated', ['100', '180', '200', 'terminated']],
  ['final from Trying', [481], 'terminated', ['481', 'terminated']],
  ['transport error', ['tcp'], 'terminated', ['timeout', 'terminated']],
];

t.test('non-INVITE client transaction (§17.1.2)', async (t) => {
  for (const [name, events, state, tu] of NON_INVITE_CLIENT) {
    const h = harness();
    const log: string[] = [];
    const bye = outgoing('BYE');
    const tx = new NonInviteClientTransaction(h.ctx, bye, {
      response: (r) => log.push(String(r.status)),
      timeout: () => log.push('timeout'),
      terminated: () => log.push('terminated'),
    });
    tx.start();
    for (const e of events) {
      if (typeof e === 'number') tx.receiveResponse(res(answer(bye.msg, { status: e })));
      else if (e === 'tcp') tx.transportError();
      else if (e.startsWith('+')) h.clock.advance(Number(e.slice(1)));
    }
    t.equal(tx.state, state, `${name}: state`);
    t.same(h.sent.map(wire), ['BYE'], `${name}: sent once, never retransmitted over TCP`);
    t.same(log, tu, `${name}: TU`);
  }
});

/** Server rows: numbers are responses the TU sends, `req` the request again, `ack` its ACK. */
const INVITE_SERVER: [string, Ev[], string, string[], string[]][] = [
  ['100 Trying at once', [], 'proceeding', ['100'], []],
  ['INVITE again in Proceeding: last provisional again', [180, 'req'], 'proceeding', ['100', '180', '180'], []],
  ['2xx: Accepted, INVITE absorbed, Timer L ends it', [200, 'req', '+32000'], 'terminated', ['100', '200'], ['terminated']],
  ['the TU retransmits its 2xx in Accepted (RFC 6026 §7.1)', [200, 200], 'accepted', ['100', '200', '200'], []],
  ['a 487 after the 2xx is refused', [200, 487], 'accepted', ['100', '200'], []],
  ['non-2xx: Completed, INVITE again gets it again', [486, 'req'], 'completed', ['100', '486', '486'], []],
  ['non-2xx, ACK: Confirmed, Timer I = 0 ends it', [486, 'ack'], 'terminated', ['100', '486'], ['terminated']],
  ['non-2xx, no ACK: Timer H', [486, '+32000'], 'terminated', ['100', '486'], ['timeout', 'terminated']],
  ['an ACK in Proceeding is ignored', ['ack'], 'proceeding', ['100'], []],
  ['transport error', ['tcp'], 'terminated', ['100'], ['terminated']],
];

t.test('INVITE server transaction (§17.2.1, RFC 6026 §7.1)', async (t) => {
  for (const [name, events, state, onWire, tu] of INVITE_SERVER) {
    const h = harness();
    const log: string[] = [];
    const invite = req(incoming());
    const tx = new InviteServerTransaction(h.ctx, invite, { timeout: () => log.push('timeout'), terminated: () => log.push('terminated') });
    tx.start();
    for (const e of events) {
      if (typeof e === 'number') {
        const ok = tx.respond(responseTo(invite, e, { toTag: tx.toTag }));
        if (name.includes('refused')) t.equal(ok, e === 200, `${name}: respond(${e})`);
      } else if (e === 'req') tx.receiveRequest(invite);
      else if (e === 'ack') tx.receiveRequest(req(incoming({ method: 'ACK', toTag: tx.toTag })));
      else if (e === 'tcp') tx.transportError();
      else h.clock.advance(Number(e.slice(1)));
    }
    t.equal(tx.state, state, `${name}: state`);
    t.same(h.sent.map(wire), onWire, `${name}: wire`);
    t.same(log, tu, `${name}: TU`);
  }
});

const NON_INVITE_SERVER: [string, Ev[], string, string[]][] = [
  ['request again in Trying is absorbed', ['req'], 'trying', []],
  ['1xx, request again: 1xx again', [100, 'req'], 'proceeding', ['100', '100']],
  ['final: Timer J = 0 ends it', [200], 'terminated', ['200']],
  ['a second final is refused', [200, 500], 'terminated', ['200']],
];

t.test('non-INVITE server transaction (§17.2.2)', async (t) => {
  for (const [name, events, state, onWire] of NON_INVITE_SERVER) {
    const h = harness();
    const bye = req(incoming({ method: 'BYE', toTag: 'b1', cseq: 2 }));
    const tx = new NonInviteServerTransaction(h.ctx, bye, { timeout: () => {}, terminated: () => {} });
    for (const e of events) {
      if (typeof e === 'number') tx.respond(responseTo(bye, e));
      else if (e === 'req') tx.receiveRequest(bye);
    }
    t.equal(tx.state, state, `${name}: state`);
    t.same(h.sent.map(wire), onWire, `${name}: wire`);
  }
});

t.test('RFC 6026 Accepted: the INVITE transactions let go of the INVITE, and reading it then throws', async (t) => {
  const h = harness();
  const invite = outgoing('INVITE');
  const quiet = { response: () => {}, timeout: () => {}, terminated: () => {} };
  const client = new InviteClientTransaction(h.ctx, invite, quiet);
  client.start();
  client.receiveResponse(res(answer(invite.msg, { status: 180 })));
  t.equal(client.request, invite, 'kept while Proceeding (a CANCEL needs it)');
  client.receiveResponse(res(answer(invite.msg, { status: 200 })));
  t.equal(client.state, 'accepted');
  t.throws(() => client.request, /released once a 2xx arrived/);
  const failed = new InviteClientTransaction(h.ctx, invite, quiet);
  failed.start();
  failed.receiveResponse(res(answer(invite.msg, { status: 486 })));
  t.equal(failed.request, invite, 'a non-2xx keeps it (its ACK is built from it)');

  const incomingInvite = req(incoming());
  const server = new InviteServerTransaction(h.ctx, incomingInvite, { timeout: () => {}, terminated: () => {} });
  server.start();
  t.equal(server.request, incomingInvite, 'kept while Proceeding');
  server.respond(responseTo(incomingInvite, 200, { toTag: server.toTag }));
  t.equal(server.state, 'accepted');
  t.throws(() => server.request, /released once a 2xx is sent/);
  const before = h.sent.length;
  server.receiveRequest(incomingInvite);
  t.equal(h.sent.length, before, 'a retransmitted INVITE is still absorbed in Accepted');
  t.ok(server.final !== null, 'the final is still known to the TU');
});
