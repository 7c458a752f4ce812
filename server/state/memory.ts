import { deserializeState } from './state-parser.js';
import type { LoadResult, SavePlan, StateStore } from './store.js';

/** In-memory twin of the file store, for tests: holds the serialised text, so it round-trips exactly like the file. */
export class MemoryStore implements StateStore {
  readonly description = 'memory';
  text: string | null = null;
  saves = 0;

  async load(): Promise<LoadResult> {
    if (this.text === null) return { kind: 'empty' };
    const { state, dropped } = deserializeState(this.text);
    return { kind: 'loaded', state, dropped };
  }

  async save(plan: SavePlan): Promise<void> {
    this.text = [...plan.full()].join('');
    this.saves++;
  }

  async flush(): Promise<void> {}
}
