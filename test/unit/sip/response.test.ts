import t from 'tap';
import { chooseBestResponse } from '../../../plugin/sip/response.js';

t.test('RFC 3261 §16.7 best response', async (t) => {
  const cases: [number[], number, string][] = [
    [[], 408, 'no final response'],
    [[100, 180], 408, 'provisional only'],
    [[486, 200, 603], 200, '2xx wins'],
    [[486, 603, 480], 603, '6xx before lower classes'],
    [[486, 404], 486, 'lowest class, first one'],
    [[500, 486], 486, '4xx before 5xx'],
    [[302, 486], 302, '3xx before 4xx'],
    [[486, 407, 401], 407, '4xx: prefer responses that help resubmission'],
    [[404, 484], 484, '484 preferred'],
    [[503], 500, 'lone 503 becomes 500'],
    [[503, 504], 504, 'another 5xx preferred to 503'],
    [[480, 480, 408], 480, 'duplicates'],
    [[NaN, 1000, -1, 486], 486, 'garbage ignored'],
  ];
  for (const [codes, want, name] of cases) t.equal(chooseBestResponse(codes), want, name);
});
