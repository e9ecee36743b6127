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

/** Change notifications for metrics and pools. */
export interface RegistryEvents {
  /** An agent's alive state or labels changed; `previous` is set when its version changed. */
  onChange?(entry: AgentEntry, previous?: AgentEntry): void;
  /** An agent was forgotten (remove its series). */
  onForget?(entry: AgentEntry): void;
}

/** In-memory registry keyed by region + ip. */
export class AgentRegistry {
  private readonly agents = new Map<string, AgentEntry>();
  /** Bumped whenever the set of live agents changes (pools depend on it). */
  generation = 0;

  /** @param deadAfterMs ratio x aggregation interval, milliseconds */
  constructor(private readonly deadAfterMs: number, private readonly events: RegistryEvents = {}, private readonly now = () => Date.now()) {}

  /** Records a heartbeat. @returns the entry */
  heartbeat(a: Agent): AgentEntry {
    const key = `${a.region}\u0000${a.ip}`;
    const t = this.now();
    const old = this.agents.get(key);
    const entry: AgentEntry = { region: a.region, ip: a.ip, version: a.version, hostname: a.hostname, firstSeenMs: old?.firstSeenMs ?? t, lastSeenMs: t, alive: true };
    this.agents.set(key, entry);
    if (!old || !old.alive || old.version !== a.version) {
      this.generation++;
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
        this.generation++;
        this.events.onChange?.(e);
      } else if (!e.alive && t - e.lastSeenMs > this.deadAfterMs + FORGET_AFTER_MS) {
        this.agents.delete(key);
        this.events.onForget?.(e);
      }
    }
  }

  /** Live agents, optionally of one region. */
  live(region?: string): AgentEntry[] {
    return [...this.agents.values()].filter((e) => e.alive && (region === undefined || e.region === region));
  }

  /** Every known agent, live or dead. */
  all(): AgentEntry[] {
    return [...this.agents.values()];
  }
}
