import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { backoffMs, classifyStatus, recentFailures } from '../../../server/pools/rules.js';

describe('health rules', () => {
  it('classifies upstream statuses', () => {
    const cases: Array<[number, string]> = [
      [200, 'ok'],
      [204, 'ok'],
      [400, 'ok'],
      [404, 'ok'],
      [401, 'invalid'],
      [403, 'invalid'],
      [402, 'exhausted'],
      [429, 'rate_limited'],
      [408, 'error'],
      [500, 'error'],
      [502, 'error'],
      [503, 'error'],
      [504, 'error'],
    ];
    for (const [status, outcome] of cases) assert.equal(classifyStatus(status), outcome, String(status));
  });

  it('backoff doubles from 60 s and stops at the cap', () => {
    assert.deepEqual(
      [0, 1, 2, 3, 4, 5, 6, 7, 100].map((l) => backoffMs(l, 3_600_000)),
      [60_000, 120_000, 240_000, 480_000, 960_000, 1_920_000, 3_600_000, 3_600_000, 3_600_000],
    );
    assert.equal(backoffMs(3, 300_000), 300_000);
  });

  it('keeps only failures inside the window', () => {
    assert.deepEqual(recentFailures([1000, 5000, 9000, 12_000], 10_000, 6000), [5000, 9000]);
  });
});
