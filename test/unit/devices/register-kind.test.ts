/** registerKind: what a REGISTER did, from its change and the store's counts (RFC 3261 §10.2, §10.3). */
import t from 'tap';
import { registerKind, type RegisterKind } from '../../../plugin/devices/register-kind.js';

t.test('registerKind', async (t) => {
  type Kind = 'fetch' | 'remove-all' | 'update';
  // [name, change kind, added, refreshed, removed, expected]
  const cases: ReadonlyArray<readonly [string, Kind, number, number, number, RegisterKind]> = [
    ['no Contact: a query', 'fetch', 0, 0, 0, 'fetch'],
    ['Contact: * with Expires: 0', 'remove-all', 0, 0, 2, 'deregister'],
    ['Contact: * with nothing stored', 'remove-all', 0, 0, 0, 'deregister'],
    ['a new device', 'update', 1, 0, 0, 'register'],
    ['a new device and a refreshed one', 'update', 1, 1, 0, 'register'],
    ['a new device while another leaves', 'update', 1, 0, 1, 'register'],
    ['a known device again', 'update', 0, 1, 0, 'refresh'],
    ['one refreshed, one removed', 'update', 0, 1, 1, 'refresh'],
    ['expires=0 on every contact', 'update', 0, 0, 2, 'deregister'],
    ['expires=0 for a device not stored', 'update', 0, 0, 0, 'refresh'],
  ];
  for (const [name, kind, added, refreshed, removed, want] of cases) {
    t.equal(registerKind({ kind }, { added, refreshed, removed }), want, name);
  }
});
