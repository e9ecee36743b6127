/**
 * Paced pool refetches (-server.pool.refetch.rate; docs/scale.md "Pool answers"). An agent fetches
 * its pool at once when a heartbeat answer's pool_version differs from the last one it saw
 * (docs/protocol.md). A join, leave or reload can change thousands of agents' pools at the same
 * moment, and each pool answer costs the server milliseconds of its one thread: at 5,000 agents
 * every agent refetched within one heartbeat interval and GetTargetPool waited 15-30 s in the
 * queue (README "Mesh at scale"). So the server tells at most `rate` agents per second that their
 * pool changed; the others are told the version they already hold, and the new one at a later
 * heartbeat. Meanwhile they probe their previous pool: results about a target that left are
 * dropped quietly within the left grace (lib/server/pool.ts leftRecently(), which the server
 * widens by spreadMs()), and pushes are checked per region, so nothing they send is rejected.
 *
 * An agent never told any version (its first heartbeat, or one to a restarted server) is told the
 * current one at once: it fetches its first pool anyway. A token bucket of `rate` tokens a
 * second holds at most REFETCH_BURST_S seconds' worth (at least one token), so an idle server
 * answers a single change at once, and a change does not queue a whole second's answers at the
 * moment it happens (at 50 a second, 5,000 agents and N = 2: ~50 answers of ~5 ms each, which a
 * pool fetch arriving then waited behind); after that the tokens come one by one, evenly spread.
 */

/** Seconds of -server.pool.refetch.rate the token bucket holds at most (the largest burst of refetches told at once). */
export const REFETCH_BURST_S = 0.2;

/** Decides which pool_version each heartbeat answer tells its agent. */
export class RefetchPacer {
  /** Agent identity -> the pool_version last told; at most `maxAgents` (oldest out first). */
  private readonly told = new Map<string, bigint>();
  private tokens: number;
  /** Tokens held at most: REFETCH_BURST_S seconds' worth, at least one. */
  private readonly capacity: number;
  private lastMs: number;

  /**
   * @param ratePerSec agents told per second at most that their pool changed; 0 = no limit
   * @param maxAgents agents remembered at most (-server.registry.max.agents)
   * @param now clock, unix ms
   */
  constructor(readonly ratePerSec: number, private readonly maxAgents: number, private readonly now: () => number = () => Date.now()) {
    this.capacity = Math.max(1, ratePerSec * REFETCH_BURST_S);
    this.tokens = this.capacity;
    this.lastMs = now();
  }

  /**
   * The pool_version to tell agent `id` (peerKey) whose pool is now at `current`
   * (TargetPool.versionFor()): `current`, or the version it was told last when the budget of
   * this second is spent.
   */
  version(id: string, current: bigint): bigint {
    const told = this.told.get(id);
    if (told === current) return current;
    // Deferred answers are counted by the caller (prober_server_pool_refetches_deferred_total).
    if (told !== undefined && this.ratePerSec > 0 && !this.take()) return told;
    this.told.delete(id);
    if (this.told.size >= this.maxAgents) this.told.delete(this.told.keys().next().value!);
    this.told.set(id, current);
    return current;
  }

  /** The agent left (forgotten or goodbye): a later return is a first heartbeat again. */
  forget(id: string): void {
    this.told.delete(id);
  }

  /**
   * How long, at most, telling `agents` agents of a change takes at this rate, ms: the extra time
   * a departed target may still be probed (0 without a limit).
   */
  spreadMs(agents: number): number {
    return this.ratePerSec > 0 ? Math.ceil((agents / this.ratePerSec) * 1000) : 0;
  }

  private take(): boolean {
    const t = this.now();
    this.tokens = Math.min(this.capacity, this.tokens + ((t - this.lastMs) / 1000) * this.ratePerSec);
    this.lastMs = t;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}
