/**
 * What agents say of themselves (PushResultsRequest.health, AgentHealth; docs/protocol.md "Agent
 * health"): checked here, summed per agent between two reads of the localiser (lib/localiser), so
 * that a starved agent (late rounds, loss on its own loopback) is blamed as itself.
 */
import type { HealthSample } from "../localiser/model.ts";
import type { AgentHealth } from "../rpc/gen/probermesh/v1/probermesh_pb.ts";

/**
 * Largest count one push may report: an agent at its design limit has 10,000 targets due per probe
 * interval, and a push carries one push period (at most an interval, more only after a stall or
 * periods without results); a thousand times that is hostile or broken.
 */
export const MAX_HEALTH_COUNT = 10_000_000;

/** Checks an AgentHealth. @returns "" or why it is unusable (then it is ignored, and counted) */
export function checkHealth(h: AgentHealth): string {
  if (h.roundsDue > MAX_HEALTH_COUNT || h.loopbackSent > MAX_HEALTH_COUNT) return `rounds_due and loopback_sent must be at most ${MAX_HEALTH_COUNT}`;
  if (h.roundsLate > h.roundsDue) return "rounds_late is more than rounds_due";
  if (h.loopbackReceived > h.loopbackSent) return "loopback_received is more than loopback_sent";
  if (!Number.isFinite(h.maxLatenessSeconds) || h.maxLatenessSeconds < 0) return "max_lateness_seconds must be finite and not negative";
  return "";
}

/** The key of an agent in take()'s map: region, NUL, ip. */
export const healthKey = (region: string, ip: string) => `${region}\u0000${ip}`;

/**
 * Sums of the agents' AgentHealth since the last take(), per agent (region + ip). Bounded: only
 * agents the registry knows are kept, and at most `maxAgents` of them between two takes.
 */
export class AgentHealthBook {
  private sums = new Map<string, HealthSample>();
  private refusedCount = 0;

  /**
   * @param knows whether the registry knows the agent (region, ip) now
   * @param maxAgents agents kept at most between two takes (the registry's -server.registry.max.agents)
   */
  constructor(
    private readonly knows: (region: string, ip: string) => boolean,
    private readonly maxAgents: number,
  ) {}

  /** Adds one push's health of an agent. @returns false when not kept (an unknown agent, or the book is full) */
  add(region: string, ip: string, h: HealthSample): boolean {
    const key = healthKey(region, ip);
    let s = this.sums.get(key);
    if (!s) {
      if (!this.knows(region, ip) || this.sums.size >= this.maxAgents) {
        this.refusedCount++;
        return false;
      }
      s = { roundsDue: 0, roundsLate: 0, loopbackSent: 0, loopbackReceived: 0 };
      this.sums.set(key, s);
    }
    s.roundsDue += h.roundsDue;
    s.roundsLate += h.roundsLate;
    s.loopbackSent += h.loopbackSent;
    s.loopbackReceived += h.loopbackReceived;
    return true;
  }

  /** The sums per agent (key: healthKey(region, ip)) since the previous call; starts anew. */
  take(): Map<string, HealthSample> {
    const out = this.sums;
    this.sums = new Map();
    return out;
  }

  /** Agents with health since the last take. */
  get size(): number {
    return this.sums.size;
  }

  /** Adds refused since start (unknown agents, a full book). */
  get refused(): number {
    return this.refusedCount;
  }
}
