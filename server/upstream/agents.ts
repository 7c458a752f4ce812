import { Agent } from 'undici';

/**
 * One keep-alive undici Agent per upstream origin, shared by the usage sync, the checks before
 * adding a key and the proxy, so every request to an origin reuses its connections.
 */
export class UpstreamAgents {
  private readonly agents = new Map<string, Agent>();

  /** The agent for `origin` (made on first use). */
  for(origin: string): Agent {
    let agent = this.agents.get(origin);
    if (!agent) {
      agent = new Agent({ keepAliveTimeout: 30_000, connections: 128 });
      this.agents.set(origin, agent);
    }
    return agent;
  }

  /** Closes every connection once its requests are done. */
  async close(): Promise<void> {
    const all = [...this.agents.values()];
    this.agents.clear();
    await Promise.all(all.map((a) => a.close().catch(() => undefined)));
  }

  /** Cuts every connection now, failing requests under way (at shutdown: nothing waits for a slow upstream). */
  async destroy(): Promise<void> {
    const all = [...this.agents.values()];
    this.agents.clear();
    await Promise.all(all.map((a) => a.destroy().catch(() => undefined)));
  }
}
