// lib/write-batch.ts: the writes of one loop turn become one, in order, nothing lost.
import t from 'tap';
import { setImmediate as turn } from 'node:timers/promises';
import { WriteBatch } from '../../../lib/write-batch.js';

function recorder() {
  const writes: { text: string; parts: readonly string[] }[] = [];
  const batch = new WriteBatch((text, parts) => writes.push({ text, parts }));
  return { writes, batch };
}

t.test('the messages of one turn go out as one write, in order, with their parts', async (t) => {
  const { writes, batch } = recorder();
  batch.add('a', 1);
  batch.add('bb', 2);
  batch.add('ccc', 3);
  t.equal(batch.size, 3);
  t.equal(batch.bytes, 6);
  t.same(writes, [], 'nothing written inside the turn');
  await turn();
  t.same(writes, [{ text: 'abbccc', parts: ['a', 'bb', 'ccc'] }]);
  t.equal(batch.size, 0);
  t.equal(batch.bytes, 0);
  batch.add('d');
  await turn();
  t.same(writes[1], { text: 'd', parts: ['d'] }, 'the next turn is a batch of its own');
  t.equal(writes.length, 2);
});

t.test('flush writes at once and cancels the scheduled turn; an empty flush writes nothing', async (t) => {
  const { writes, batch } = recorder();
  batch.flush();
  t.same(writes, []);
  batch.add('x');
  batch.flush();
  t.same(writes, [{ text: 'x', parts: ['x'] }]);
  await turn();
  t.equal(writes.length, 1, 'not written twice');
});

t.test('take returns what waits and nothing is written for it', async (t) => {
  const { writes, batch } = recorder();
  batch.add('p', 1);
  batch.add('q', 1);
  t.same(batch.take(), ['p', 'q']);
  t.equal(batch.bytes, 0);
  await turn();
  t.same(writes, []);
  batch.add('r');
  await turn();
  t.same(writes, [{ text: 'r', parts: ['r'] }], 'usable again after take');
});

t.test('a message added by the sink itself goes into the next batch', async (t) => {
  const seen: string[] = [];
  const batch: WriteBatch = new WriteBatch((text) => {
    seen.push(text);
    if (text === 'first') batch.add('second');
  });
  batch.add('first');
  await turn();
  await turn();
  t.same(seen, ['first', 'second']);
});
