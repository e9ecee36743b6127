/**
 * Agent registry: who heartbeated when. An agent silent for ratio x aggregation interval is dead
 * (docs/flags.md, -server.series.cache.ratio); dead agents leave the dynamic ICMP pools at once and are
 * forgotten FORGET_AFTER_MS later.
 */
import type { Agent } from "../rpc/gen/probermesh/v1/probermesh_pb.ts";

/** How long a dead agent is remembered (and shown as prober_agent_is_alive 0), milliseconds. */
export const FORGET_AFTER_MS = 3_600_000;

/** A registry entry. Times are Date.now() milliseconds. */
export interface AgentEntry {
  region: string;
  ip: string;
  version: string;
  hostname: string;
  firstSeenMs: number;
  lastSeenMs: number;
  alive: boolean;
}

/** Why the registry refused a new entry (label `reason` of prober_server_registry_refusals_total). */
export const REGISTRY_REFUSALS = {
  max_agents: "-server.registry.max.agents agents are known already",
  max_regions: "-server.registry.max.regions regions are known already",
} as const;
export type RegistryRefusal = keyof typeof REGISTRY_REFUSALS;

/** Thrown by heartbeat() when a new agent would exceed a cap. */
export class RegistryFull extends Error {
  constructor(readonly reason: RegistryRefusal) {
    super(`registry full: ${REGISTRY_REFUSALS[reason]}`);
  }
}

/** Caps on what heartbeats can add (outside input must not grow memory without bound). */
export interface RegistryLimits {
  maxAgents: number;
  maxRegions: number;
}

/** Change notifications for metrics and pools. */
export interface RegistryEvents {
  /** An agent's alive state or labels changed; `previous` is set when its version changed. */
  onChange?(entry: AgentEntry, previous?: AgentEntry): void;
  /** A heartbeat arrived at this server (to share it with other servers). */
  onHeartbeat?(entry: AgentEntry): void;
  /** An agent was forgotten (remove its series). */
  onForget?(entry: AgentEntry): void;
}

/** In-memory registry keyed by region + ip. */
export class AgentRegistry {
  private readonly agents = new Map<string, AgentEntry>();
  /** Known agents (live or dead) per region. */
  private readonly perRegion = new Map<string, number>();

  /** @param deadAfterMs ratio x aggregation interval, milliseconds */
  constructor(
    private readonly deadAfterMs: number,
    private readonly events: RegistryEvents = {},
    private readonly now = () => Date.now(),
    private readonly limits: RegistryLimits = { maxAgents: 10_000, maxRegions: 1_000 },
  ) {}

  /** Records a heartbeat received here. @returns the entry @throws RegistryFull when a new agent would exceed a cap */
  heartbeat(a: Agent): AgentEntry {
    const e = this.record(a, this.now(), undefined);
    this.events.onHeartbeat?.(e);
    return e;
  }

  /**
   * Records a heartbeat another server received (the shared registry): applied when newer than
   * what is known here. @returns false when it was older, or refused by a cap
   */
  observe(a: Pick<AgentEntry, "region" | "ip" | "version" | "hostname" | "firstSeenMs" | "lastSeenMs">): boolean {
    const old = this.agents.get(`${a.region}\u0000${a.ip}`);
    if (old && old.lastSeenMs >= a.lastSeenMs) return false;
    if (this.now() - a.lastSeenMs > this.deadAfterMs) return false; // already dead: nothing to learn
    try {
      this.record(a, a.lastSeenMs, a.firstSeenMs);
      return true;
    } catch (e) {
      if (e instanceof RegistryFull) return false;
      throw e;
    }
  }

  private record(a: Pick<Agent, "region" | "ip" | "version" | "hostname">, t: number, firstSeenMs: number | undefined): AgentEntry {
    const key = `${a.region}\u0000${a.ip}`;
    const old = this.agents.get(key);
    if (!old) {
      if (this.agents.size >= this.limits.maxAgents) throw new RegistryFull("max_agents");
      if (!this.perRegion.has(a.region) && this.perRegion.size >= this.limits.maxRegions) throw new RegistryFull("max_regions");
      this.perRegion.set(a.region, (this.perRegion.get(a.region) ?? 0) + 1);
    }
    const entry: AgentEntry = { region: a.region, ip: a.ip, version: a.version, hostname: a.hostname, firstSeenMs: old?.firstSeenMs ?? firstSeenMs ?? t, lastSeenMs: t, alive: true };
    this.agents.set(key, entry);
    if (!old || !old.alive || old.version !== a.version) {
      this.events.onChange?.(entry, old && old.version !== a.version ? old : undefined);
    }
    return entry;
  }

  /** Marks silent agents dead and forgets long-dead ones; call periodically. */
  sweep(): void {
    const t = this.now();
    for (const [key, e] of this.agents) {
      if (e.alive && t - e.lastSeenMs > this.deadAfterMs) {
        e.alive = false;
        this.events.onChange?.(e);
      } else if (!e.alive && t - e.lastSeenMs > this.deadAfterMs + FORGET_AFTER_MS) {
        this.agents.delete(key);
        const n = (this.perRegion.get(e.region) ?? 1) - 1;
        if (n > 0) this.perRegion.set(e.region, n);
        else this.perRegion.delete(e.region);
        this.events.onForget?.(e);
      }
    }
  }

  /** Live agents, optionally of one region. */
  live(region?: string): AgentEntry[] {
    return [...this.agents.values()].filter((e) => e.alive && (region === undefined || e.region === region));
  }

  /** True when the agent (region, ip) heartbeated within the dead-after time. */
  isLive(region: string, ip: string): boolean {
    return this.agents.get(`${region}\u0000${ip}`)?.alive === true;
  }

  /** Every known agent, live or dead. */
  all(): AgentEntry[] {
    return [...this.agents.values()];
  }
}
