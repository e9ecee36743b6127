/**
 * The responder's reflector counts (packet.ts bytes 20..23 of a reply): per flow, how many
 * requests it has received, as RFC 5357 (TWAMP)'s Session-Reflector keeps its own sequence number,
 * so the prober can split a round trip's loss by direction (oneway.ts).
 *
 * A flow is what the prober keeps one sequence for: the request's source IP and port and the
 * prober's nonce. The counts are bounded (REFLECTOR_MAX_FLOWS) and the flows seen longest ago
 * are forgotten first, in two generations of half the bound each: new flows go into the current
 * generation; when it is full it becomes the previous one and the previous one is dropped; a flow
 * found only in the previous generation moves to the current one. So a flow seen again before
 * maxFlows / 2 other flows are first seen is never forgotten, and no request pays for eviction
 * (a Map evicting its oldest entry one by one skips ever more deleted slots: 1-26 µs a request
 * at 65,536 flows here, bench/udp.ts). A forgotten flow that comes back restarts at 1, which the
 * prober reads as a reset (its count went down). Only verified requests reach it (responder.ts
 * counts after the rate limits and the tag), so nobody without the mesh key can fill it.
 */
import { MAX_COUNT } from "./packet.ts";

/**
 * Flows whose counts are kept: a mesh of 500 agents with 16 flows each is 8,000 flows per
 * responder; 65,536 leaves room for probers' restarts (a new nonce is a new flow) and for
 * -agent.udp.flow.ports ranges up to 1,024 flows. About 100 bytes a flow: ~6.5 MB at most.
 */
export const REFLECTOR_MAX_FLOWS = 65_536;

/** Per-flow request counts; the flows seen longest ago are forgotten first (two generations). */
export class ReflectorCounts {
  private current = new Map<string, number>();
  private previous = new Map<string, number>();
  private readonly generation: number;

  /** @param maxFlows flows kept at most (default REFLECTOR_MAX_FLOWS; at least 2) */
  constructor(maxFlows = REFLECTOR_MAX_FLOWS) {
    this.generation = Math.max(1, Math.floor(maxFlows / 2));
  }

  /** Counts kept (a flow that moved to the current generation may also linger in the previous one). */
  get size(): number {
    return this.current.size + this.previous.size;
  }

  /**
   * Counts one more request of a flow and returns its count, this request included: 1 for a new
   * (or forgotten) flow, then 2, 3, ..., MAX_COUNT, then 1 again (never 0, which means "not
   * counted" on the wire).
   * @param sourceIp the request's source address as text
   * @param sourcePort its source port
   * @param nonceHi the nonce's upper 32 bits (packet bytes 8..11)
   * @param nonceLo the nonce's lower 32 bits (packet bytes 12..15)
   */
  next(sourceIp: string, sourcePort: number, nonceHi: number, nonceLo: number): number {
    // A short key (~40 characters) rather than a BigInt nonce: the cheapest exact key here.
    const key = `${sourceIp} ${sourcePort} ${nonceHi} ${nonceLo}`;
    let c = this.current.get(key);
    if (c === undefined) {
      // Its stale copy, if any, stays in `previous` until that is dropped; it is never read again.
      c = this.previous.get(key);
      if (this.current.size >= this.generation) {
        this.previous = this.current;
        this.current = new Map();
      }
    }
    const n = c === undefined || c >= MAX_COUNT ? 1 : c + 1;
    this.current.set(key, n);
    return n;
  }
}
