// contiguous() (media/relay/deferral.ts): a deferred message is stored only when its
// chunks cover 1..total with no gap or overlap (RFC 4975 §7.3 Byte-Range).
import t from 'tap';
import { contiguous } from '../../../media/relay/deferral.js';

const cases: { name: string; parts: [number, number][]; total: number | '*' | undefined; want: boolean }[] = [
  { name: 'one chunk, whole', parts: [[1, 10]], total: 10, want: true },
  { name: 'one chunk, no total', parts: [[1, 10]], total: undefined, want: true },
  { name: 'three chunks in order', parts: [[1, 4], [5, 4], [9, 2]], total: 10, want: true },
  { name: 'three chunks out of order', parts: [[9, 2], [1, 4], [5, 4]], total: 10, want: true },
  { name: 'total unknown (*)', parts: [[1, 4], [5, 6]], total: '*', want: true },
  { name: 'empty message', parts: [[1, 0]], total: 0, want: true },
  { name: 'from the middle (first chunks evicted)', parts: [[101, 100], [201, 100]], total: 300, want: false },
  { name: 'a gap', parts: [[1, 100], [201, 100]], total: 300, want: false },
  { name: 'an overlap', parts: [[1, 100], [51, 100]], total: 150, want: false },
  { name: 'short of the total', parts: [[1, 100], [101, 100]], total: 300, want: false },
  { name: 'past the total', parts: [[1, 100], [101, 100]], total: 150, want: false },
  { name: 'a later chunk without Byte-Range (start 0)', parts: [[1, 100], [0, 100]], total: undefined, want: false },
  { name: 'no chunk', parts: [], total: 10, want: false },
];

for (const c of cases) {
  t.equal(contiguous(c.parts.map(([start, length]) => ({ start, length })), c.total), c.want, c.name);
}
