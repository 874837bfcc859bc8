/** Every state machine's NEXT table, legal and illegal moves, through the one guard. */
import t from 'tap';
import { guardedTransition, IllegalTransition, type NextTable } from '../../../../lib/fsm.js';
import { INVITE_CLIENT_NEXT } from '../../../../plugin/b2bua/sip/invite-client.js';
import { NON_INVITE_CLIENT_NEXT } from '../../../../plugin/b2bua/sip/non-invite-client.js';
import { INVITE_SERVER_NEXT } from '../../../../plugin/b2bua/sip/invite-server.js';
import { NON_INVITE_SERVER_NEXT } from '../../../../plugin/b2bua/sip/non-invite-server.js';
import { DIALOG_NEXT } from '../../../../plugin/b2bua/sip/dialog.js';
import { RETRANSMIT_2XX_NEXT } from '../../../../plugin/b2bua/sip/invite-usage.js';

const machines: [string, NextTable<string>, string[]][] = [
  ['INVITE client (§17.1.1, RFC 6026 §7.2)', INVITE_CLIENT_NEXT, [
    'calling>proceeding', 'calling>accepted', 'calling>completed', 'calling>terminated',
    'proceeding>accepted', 'proceeding>completed', 'proceeding>terminated', 'accepted>terminated', 'completed>terminated',
  ]],
  ['non-INVITE client (§17.1.2)', NON_INVITE_CLIENT_NEXT, [
    'trying>proceeding', 'trying>completed', 'trying>terminated', 'proceeding>completed', 'proceeding>terminated', 'completed>terminated',
  ]],
  ['INVITE server (§17.2.1, RFC 6026 §7.1)', INVITE_SERVER_NEXT, [
    'proceeding>accepted', 'proceeding>completed', 'proceeding>terminated', 'accepted>terminated',
    'completed>confirmed', 'completed>terminated', 'confirmed>terminated',
  ]],
  ['non-INVITE server (§17.2.2)', NON_INVITE_SERVER_NEXT, [
    'trying>proceeding', 'trying>completed', 'trying>terminated', 'proceeding>completed', 'proceeding>terminated', 'completed>terminated',
  ]],
  ['dialog (§12)', DIALOG_NEXT, ['early>confirmed', 'early>terminated', 'confirmed>terminated']],
  ['2xx retransmission (§13.3.1.4)', RETRANSMIT_2XX_NEXT, ['retransmitting>done']],
];

for (const [name, next, legal] of machines) {
  t.test(name, async (t) => {
    const states = Object.keys(next);
    const allowed = new Set(legal);
    for (const from of states) {
      for (const to of states) {
        const move = `${from}>${to}`;
        if (allowed.has(move)) t.equal(guardedTransition(name, next, from, to), to, `legal ${move}`);
        else t.throws(() => guardedTransition(name, next, from, to), IllegalTransition, `illegal ${move}`);
      }
    }
    t.equal(states.filter((s) => next[s]!.length === 0).length, 1, 'one final state');
  });
}
