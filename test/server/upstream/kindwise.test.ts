import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { readUsageAnswer, sentenceOf, windowNamed } from '../../../server/upstream/kindwise.js';

const NOW = Date.parse('2026-11-21T12:00:00Z');
const ID = 'aaaaaaaaaaaa';

function usage(over: Record<string, unknown> = {}) {
  return JSON.stringify({
    active: true,
    credit_limits: { day: 100, week: null, month: 1000, total: null },
    used: { day: 100, week: 3, month: 400, total: 900 },
    remaining: { day: 0, week: null, month: 600, total: null },
    can_use_credits: { value: true, reason: null },
    ...over,
  });
}

describe('reading Kindwise usage_info answers', () => {
  it('a 401 or 403 is invalid with its sentence; a 200 with active false is invalid "inactive"', () => {
    assert.deepEqual(readUsageAnswer(ID, { status: 401, body: '"The specified api key not found."' }, NOW), {
      reached: true,
      keyId: ID,
      finding: { status: 'invalid', reason: 'The specified api key not found.' },
      credits: null,
    });
    assert.deepEqual(readUsageAnswer(ID, { status: 403, body: '{"detail":"Forbidden."}' }, NOW), {
      reached: true,
      keyId: ID,
      finding: { status: 'invalid', reason: 'Forbidden.' },
      credits: null,
    });
    const inactive = readUsageAnswer(ID, { status: 200, body: usage({ active: false }) }, NOW);
    assert.deepEqual(inactive.reached && inactive.finding, { status: 'invalid', reason: 'inactive' });
  });

  it('can_use_credits false is exhausted in the longest window with nothing left, else the one its reason names, else total', () => {
    const day = readUsageAnswer(
      ID,
      {
        status: 200,
        body: usage({ can_use_credits: { value: false, reason: 'Your api key reached its day credit limit (100).' } }),
      },
      NOW,
    );
    assert.deepEqual(day, {
      reached: true,
      keyId: ID,
      finding: { status: 'exhausted', reason: 'Your api key reached its day credit limit (100).', window: 'day' },
      credits: {
        remaining: { day: 0, week: null, month: 600, total: null },
        used: { day: 100, week: 3, month: 400, total: 900 },
        limits: { day: 100, week: null, month: 1000, total: null },
        syncedAt: NOW,
      },
    });
    const both = readUsageAnswer(
      ID,
      {
        status: 200,
        body: usage({
          remaining: { day: 0, week: null, month: 0, total: null },
          can_use_credits: { value: false, reason: 'x' },
        }),
      },
      NOW,
    );
    assert.equal(both.reached && both.finding?.status === 'exhausted' && both.finding.window, 'month');
    const named = readUsageAnswer(
      ID,
      {
        status: 200,
        body: usage({
          remaining: { day: 5 },
          can_use_credits: { value: false, reason: 'Your api key reached its week credit limit (30).' },
        }),
      },
      NOW,
    );
    assert.equal(named.reached && named.finding?.status === 'exhausted' && named.finding.window, 'week');
    const unknown = readUsageAnswer(
      ID,
      { status: 200, body: usage({ remaining: {}, can_use_credits: { value: false, reason: null } }) },
      NOW,
    );
    assert.deepEqual(unknown.reached && unknown.finding, {
      status: 'exhausted',
      reason: 'cannot use credits',
      window: 'total',
    });
  });

  it('a fine key carries its credits; missing windows read as null', () => {
    const r = readUsageAnswer(
      ID,
      { status: 200, body: JSON.stringify({ active: true, remaining: { day: 7 }, can_use_credits: { value: true } }) },
      NOW,
    );
    assert.deepEqual(r, {
      reached: true,
      keyId: ID,
      finding: null,
      credits: {
        remaining: { day: 7, week: null, month: null, total: null },
        used: { day: null, week: null, month: null, total: null },
        limits: { day: null, week: null, month: null, total: null },
        syncedAt: NOW,
      },
    });
  });

  it('numbers that are no counts of credits (-5, 1.8e308, "12", 2.5) read as unknown and are named; active must be a boolean', () => {
    const body =
      '{"active": true, "remaining": {"day": -5, "week": 1.8e308, "total": 40}, "used": {"month": "12"}, ' +
      '"credit_limits": {"day": 2.5, "total": 9007199254740993}, "can_use_credits": {"value": true}}';
    const r = readUsageAnswer(ID, { status: 200, body }, NOW);
    assert.deepEqual(r, {
      reached: true,
      keyId: ID,
      finding: null,
      credits: {
        remaining: { day: null, week: null, month: null, total: 40 },
        used: { day: null, week: null, month: null, total: null },
        limits: { day: null, week: null, month: null, total: null },
        syncedAt: NOW,
      },
      ignored: [
        'remaining.day -5',
        'remaining.week Infinity', // 1.8e308 is past the largest double
        'used.month "12"',
        'credit_limits.day 2.5',
        'credit_limits.total 9007199254740992',
      ],
    });
    const yes = readUsageAnswer(ID, { status: 200, body: '{"active": "yes", "remaining": {"day": 3}}' }, NOW);
    assert.equal(yes.reached, false);
  });

  it('no answer, a 5xx, a 429 or a 200 that is not usage_info is not a verdict', () => {
    assert.deepEqual(readUsageAnswer(ID, { error: 'GET https://plant.id/api/v3/usage_info: ECONNREFUSED' }, NOW), {
      reached: false,
      error: 'GET https://plant.id/api/v3/usage_info: ECONNREFUSED',
    });
    assert.deepEqual(readUsageAnswer(ID, { status: 503, body: '{"detail":"Service temporarily unavailable."}' }, NOW), {
      reached: false,
      error: 'usage_info answered 503: Service temporarily unavailable.',
    });
    assert.deepEqual(readUsageAnswer(ID, { status: 429, body: '' }, NOW), {
      reached: false,
      error: 'usage_info answered 429: HTTP 429',
    });
    assert.deepEqual(readUsageAnswer(ID, { status: 200, body: '<html>captive portal</html>' }, NOW), {
      reached: false,
      error: 'usage_info answered 200 with a body that is not usage_info',
    });
    assert.deepEqual(readUsageAnswer(ID, { status: 200, body: '{"active":"yes"}' }, NOW), {
      reached: false,
      error: 'usage_info answered 200 with a body that is not usage_info',
    });
  });

  it('sentences and the windows they name', () => {
    assert.equal(sentenceOf('"a\\n  b"', 401), 'a b');
    assert.equal(sentenceOf('not json at all', 401), 'not json at all');
    assert.equal(sentenceOf('{}', 401), 'HTTP 401');
    assert.equal(sentenceOf(JSON.stringify('x'.repeat(500)), 401).length, 200);
    assert.equal(windowNamed('Your api key reached its day credit limit (100).'), 'day');
    assert.equal(windowNamed('Your api key reached its Month credit limit (5).'), 'month');
    assert.equal(windowNamed('Your api key does not have sufficient number of available credits.'), 'total');
    assert.equal(windowNamed('Something else.'), null);
  });
});
