import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isStatsMessage } from '../../../bot/commands/stats.js';

describe('stats command', () => {
  it('recognises the prefix command and nothing else', () => {
    assert.equal(isStatsMessage('!stats', '!'), true);
    assert.equal(isStatsMessage('  !STATS  ', '!'), true);
    assert.equal(isStatsMessage('!stats plantid', '!'), true);
    assert.equal(isStatsMessage('!statsy', '!'), false);
    assert.equal(isStatsMessage('stats', '!'), false);
    assert.equal(isStatsMessage('?stats', '?'), true);
  });
});
