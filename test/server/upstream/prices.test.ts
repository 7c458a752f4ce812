import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { kindwiseUpstream } from '../../../server/upstream/config.js';
import { accessTokenIn, priceOf } from '../../../server/upstream/prices.js';

const plant = kindwiseUpstream('plant.id');
const crop = kindwiseUpstream('crop.health');
const json = (v: unknown) => [Buffer.from(JSON.stringify(v))];
/** A create as large as a real one: megabytes of base64 images around the fields. */
const big = (fields: Record<string, unknown>) =>
  json({ images: [`data:image/jpeg;base64,${'A'.repeat(300_000)}`], ...fields, similar_images: true });
/** The same body in pieces of `size` bytes, as it arrives from a socket. */
const pieces = (body: Buffer[], size: number) => {
  const whole = Buffer.concat(body);
  const out: Buffer[] = [];
  for (let i = 0; i < whole.length; i += size) out.push(whole.subarray(i, i + size));
  return out;
};

describe('prices of proxied requests', () => {
  it('creates spend credits: 1, a plant.id identification with health "all" 2 (body or query), crop.health 1 either way', () => {
    assert.deepEqual(priceOf(plant, 'POST', '/api/v3/identification', '', json({ images: ['x'] })), {
      kind: 'create',
      credits: 1,
      customId: null,
    });
    assert.deepEqual(
      priceOf(
        plant,
        'POST',
        '/api/v3/identification',
        'details=common_names',
        json({ images: ['x'], health: 'all', custom_id: 42 }),
      ),
      { kind: 'create', credits: 2, customId: '42' },
    );
    assert.deepEqual(priceOf(plant, 'POST', '/api/v3/identification', 'health=all', null), {
      kind: 'create',
      credits: 2,
      customId: null,
    });
    assert.deepEqual(priceOf(plant, 'POST', '/api/v3/identification', '', json({ images: ['x'], health: 'only' })), {
      kind: 'create',
      credits: 1,
      customId: null,
    });
    assert.deepEqual(priceOf(plant, 'POST', '/api/v3/health_assessment', '', json({ images: ['x'], health: 'all' })), {
      kind: 'create',
      credits: 1,
      customId: null,
    });
    assert.deepEqual(priceOf(crop, 'POST', '/api/v1/identification', '', json({ images: ['x'], health: 'all' })), {
      kind: 'create',
      credits: 1,
      customId: null,
    });
  });

  it('a large body is searched for its fields, not parsed: the same price and custom id', () => {
    assert.deepEqual(priceOf(plant, 'POST', '/api/v3/identification', '', big({ health: 'all', custom_id: 7 })), {
      kind: 'create',
      credits: 2,
      customId: '7',
    });
    assert.deepEqual(priceOf(plant, 'POST', '/api/v3/identification', '', big({})), {
      kind: 'create',
      credits: 1,
      customId: null,
    });
    // In pieces, whatever seam a name or its value falls on.
    for (const size of [1000, 4096, 7, 65_536]) {
      assert.deepEqual(
        priceOf(plant, 'POST', '/api/v3/identification', '', pieces(big({ health: 'all', custom_id: 123456 }), size)),
        { kind: 'create', credits: 2, customId: '123456' },
        `pieces of ${size}`,
      );
    }
  });

  it('whatever names an identification is pinned and free; usage_info and name_search are free; anything else one use', () => {
    for (const [method, path] of [
      ['GET', '/api/v3/identification/abc123'],
      ['DELETE', '/api/v3/identification/abc123'],
      ['POST', '/api/v3/identification/abc123/feedback'],
      ['POST', '/api/v3/identification/abc123/conversation'],
      ['GET', '/api/v3/identification/abc123/conversation'],
      ['POST', '/api/v3/identification/abc123/conversation/feedback'],
    ])
      assert.deepEqual(
        priceOf(plant, method!, path!, '', null),
        { kind: 'pinned', ref: 'abc123' },
        `${method} ${path}`,
      );
    assert.deepEqual(priceOf(crop, 'GET', '/api/v1/identification/42', '', null), { kind: 'pinned', ref: '42' });
    assert.deepEqual(priceOf(plant, 'GET', '/api/v3/usage_info', '', null), { kind: 'free' });
    assert.deepEqual(priceOf(plant, 'GET', '/api/v3/kb/plants/name_search', 'q=rose', null), { kind: 'free' });
    assert.deepEqual(priceOf(plant, 'GET', '/api/v3/kb/plants/abc', '', null), { kind: 'use', credits: 1 });
    assert.deepEqual(priceOf(plant, 'GET', '/api/v1/identification/abc', '', null), { kind: 'use', credits: 1 }); // not this product's base
    assert.deepEqual(
      priceOf(
        { type: 'header', origin: 'https://api.example', header: 'X-Key', format: '{key}' },
        'GET',
        '/api/v3/usage_info',
        '',
        null,
      ),
      { kind: 'use', credits: 1 },
    );
  });

  it("a create's access_token is read off the start of its answer", () => {
    assert.equal(accessTokenIn('{"access_token": "f0e1d2c3", "model_version": "plant_id:5"'), 'f0e1d2c3');
    assert.equal(accessTokenIn('{"status":"COMPLETED"}'), null);
  });
});
