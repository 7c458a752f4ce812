import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { kindwiseUpstream, type UpstreamConfig } from '../../../server/upstream/config.js';
import {
  keyHeader,
  keyHeaderLine,
  presentedToken,
  upstreamPathAndQuery,
} from '../../../server/upstream/credentials.js';
import {
  judgeAttempt,
  mayResend,
  neverSent,
  refusedTheKey,
  retryAfterSeconds,
} from '../../../server/upstream/proxy-outcome.js';

const NOW = Date.parse('2026-11-21T12:00:00Z');
const kindwise: UpstreamConfig = kindwiseUpstream('plant.id');
const bearerApi: UpstreamConfig = {
  type: 'header',
  origin: 'https://api.example',
  header: 'Authorization',
  format: 'Bearer {key}',
};
const queryApi: UpstreamConfig = { type: 'query', origin: 'https://api.example', param: 'key' };

describe('what a proxied answer says of its key', () => {
  it('2xx, 3xx and other 4xx are ok; 401 and 403 invalid; 5xx error', () => {
    for (const status of [200, 201, 204, 301, 304, 400, 404, 409, 413, 422])
      assert.deepEqual(judgeAttempt(kindwise, status, '', undefined, NOW, 3600), { outcome: 'ok' }, String(status));
    assert.deepEqual(judgeAttempt(kindwise, 401, '"The specified api key is not active."', undefined, NOW, 3600), {
      outcome: 'invalid',
      reason: 'The specified api key is not active.',
    });
    assert.deepEqual(judgeAttempt(bearerApi, 403, '{"message":"Forbidden"}', undefined, NOW, 3600), {
      outcome: 'invalid',
      reason: 'Forbidden',
    });
    for (const status of [500, 502, 503, 504])
      assert.deepEqual(judgeAttempt(kindwise, status, '', undefined, NOW, 3600), { outcome: 'error' });
  });

  it('a Kindwise 429 is read first: a credit limit named is exhausted in that window, anything else rate limited', () => {
    assert.deepEqual(
      judgeAttempt(kindwise, 429, '"Your api key reached its week credit limit (700)."', undefined, NOW, 3600),
      { outcome: 'exhausted', window: 'week', reason: 'Your api key reached its week credit limit (700).' },
    );
    assert.deepEqual(
      judgeAttempt(
        kindwise,
        429,
        '"Your api key does not have sufficient number of available credits."',
        undefined,
        NOW,
        3600,
      ),
      {
        outcome: 'exhausted',
        window: 'total',
        reason: 'Your api key does not have sufficient number of available credits.',
      },
    );
    assert.deepEqual(judgeAttempt(kindwise, 429, '"Too many requests."', '7', NOW, 3600), {
      outcome: 'rate_limited',
      retryAfterSec: 7,
    });
    // Another API's 429 is never read as credits.
    assert.deepEqual(judgeAttempt(bearerApi, 429, '"reached its day credit limit (1)."', undefined, NOW, 3600), {
      outcome: 'rate_limited',
      retryAfterSec: null,
    });
  });

  it('Retry-After in seconds or as an HTTP date', () => {
    assert.equal(retryAfterSeconds('120', NOW, 3600), 120);
    assert.equal(retryAfterSeconds('Sat, 21 Nov 2026 12:01:30 GMT', NOW, 3600), 90);
    assert.equal(retryAfterSeconds('Sat, 21 Nov 2026 11:00:00 GMT', NOW, 3600), 0);
    assert.equal(retryAfterSeconds('soon', NOW, 3600), null);
    assert.equal(retryAfterSeconds(undefined, NOW, 3600), null);
  });

  it('an upstream cannot keep a key out past the cap: a huge number or a date in 9999 reads as the cap', () => {
    assert.equal(retryAfterSeconds('99999999999', NOW, 3600), 3600);
    assert.equal(retryAfterSeconds('Fri, 31 Dec 9999 23:59:59 GMT', NOW, 3600), 3600);
    assert.deepEqual(judgeAttempt(kindwise, 429, '"Too many requests."', '99999999999', NOW, 600), {
      outcome: 'rate_limited',
      retryAfterSec: 600,
    });
  });

  it('failover after a refusal; a resend after a 5xx or timeout only where it cannot spend twice; a refused connection always', () => {
    assert.deepEqual(
      (['ok', 'invalid', 'exhausted', 'rate_limited', 'error'] as const).map((o) =>
        refusedTheKey({ outcome: o } as never),
      ),
      [false, true, true, true, false],
    );
    assert.deepEqual(
      ['GET', 'HEAD', 'PUT', 'DELETE', 'OPTIONS', 'POST', 'PATCH'].map((m) => mayResend(m, false)),
      [true, true, true, true, true, false, false],
    );
    assert.equal(mayResend('POST', true), true);
    assert.deepEqual(
      ['ECONNREFUSED', 'UND_ERR_CONNECT_TIMEOUT', 'ECONNRESET', 'UND_ERR_SOCKET', undefined].map(neverSent),
      [true, true, false, false, false],
    );
  });
});

describe('where an upstream takes its key', () => {
  it('Kindwise: Api-Key; a caller token there is read as is', () => {
    assert.equal(keyHeader(kindwise), 'api-key');
    assert.deepEqual(keyHeaderLine(kindwise, 'K'), ['Api-Key', 'K']);
    assert.equal(presentedToken(kindwise, ' tok ', null), 'tok');
    assert.equal(presentedToken(kindwise, undefined, null), null);
  });

  it('a header with a format: the token read through the format, the key written through it', () => {
    assert.equal(keyHeader(bearerApi), 'authorization');
    assert.deepEqual(keyHeaderLine(bearerApi, 'K'), ['Authorization', 'Bearer K']);
    assert.equal(presentedToken(bearerApi, 'Bearer tok', null), 'tok');
    assert.equal(presentedToken(bearerApi, 'bearer tok', null), 'tok');
    assert.equal(presentedToken(bearerApi, 'Basic tok', null), null);
    const suffixed: UpstreamConfig = {
      type: 'header',
      origin: 'https://x.example',
      header: 'X-Auth',
      format: 'key={key};v=1',
    };
    assert.equal(presentedToken(suffixed, 'key=tok;v=1', null), 'tok');
    assert.deepEqual(keyHeaderLine(suffixed, 'K'), ['X-Auth', 'key=K;v=1']);
  });

  it("a query parameter: the caller's value dropped, the key set; other queries byte for byte", () => {
    assert.equal(keyHeader(queryApi), null);
    assert.equal(presentedToken(queryApi, undefined, new URLSearchParams('q=1&key=tok')), 'tok');
    assert.equal(upstreamPathAndQuery(queryApi, '/find', 'q=fern&key=tok', 'K'), '/find?q=fern&key=K');
    assert.equal(
      upstreamPathAndQuery(kindwise, '/api/v3/identification', 'details=a%2Cb', 'K'),
      '/api/v3/identification?details=a%2Cb',
    );
    assert.equal(upstreamPathAndQuery(kindwise, '/x', '', 'K'), '/x');
  });
});
