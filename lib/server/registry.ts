/**
 * Agent registry: who heartbeated when (docs/protocol.md "Agents that go away").
 *
 * - An agent silent for ratio x aggregation interval is dead (-server.series.cache.ratio):
 *   prober_agent_is_alive 0. It stays a mesh target: the other regions keep probing it, so a cut-off
 *   region reads loss 1 and a crashed agent on a live host reads loss 0 — the silence is measured,
 *   not hidden.
 * - A dead agent is forgotten -server.agent.forget.after later (default 1h): it leaves the pools
 *   and its series go.
 * - An agent that says goodbye (Deregister, on SIGTERM/SIGINT) is removed at once.
 */
import type { Agent } from "../rpc/gen/probermesh/v1/probermesh_pb.ts";

/** Default of -server.agent.forget.after: how long a dead agent is remembered (kept in pools, shown as prober_agent_is_alive 0), milliseconds. */
export const FORGET_AFTER_MS = 3_600_000;

/** A registry entry. Times are Date.now() milliseconds. */
export interface AgentEntry {
  region: string;
  ip: string;
  version: string;
  hostname: string;
  /** Ports of the agent's UDP responder and TCP listener on `ip` (Agent.udp_port / tcp_port); 0 = none (agents before 0.6). */
  udpPort: number;
  tcpPort: number;
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
  /** An agent became known (first heartbeat, or first seen in the shared registry): it joins the pools. */
  onJoin?(entry: AgentEntry): void;
  /** An agent's alive state, labels or ports changed; `previous` is set when its version or a port changed. */
  onChange?(entry: AgentEntry, previous?: AgentEntry): void;
  /** A heartbeat arrived at this server (to share it with other servers). */
  onHeartbeat?(entry: AgentEntry): void;
  /**
   * An agent was forgotten (dead for -server.agent.forget.after) or said goodbye (`goodbye`):
   * it leaves the pools and its series go.
   */
  onForget?(entry: AgentEntry, goodbye: boolean): void;
  /** An agent said goodbye at this server (to share it with other servers); `atMs` is when. */
  onGoodbye?(entry: AgentEntry, atMs: number): void;
}

/** What the shared registry stores and observe() takes. */
export type AgentRecord = Pick<AgentEntry, "region" | "ip" | "version" | "hostname" | "firstSeenMs" | "lastSeenMs"> & Partial<Pick<AgentEntry, "udpPort" | "tcpPort">>;

/** A port as announced (Agent.udp_port / tcp_port, or a shared record): 1..65535, else 0 (none). */
export function announcedPort(p: unknown): number {
  return typeof p === "number" && Number.isInteger(p) && p >= 1 && p <= 65535 ? p : 0;
}

/** True when the two entries announce different responder ports. */
export function portsDiffer(a: Pick<AgentEntry, "udpPort" | "tcpPort">, b: Pick<AgentEntry, "udpPort" | "tcpPort">): boolean {
  return a.udpPort !== b.udpPort || a.tcpPort !== b.tcpPort;
}

/** In-memory registry keyed by region + ip. */
export class AgentRegistry {
  private readonly agents = new Map<string, AgentEntry>();
  /** Known agents (live or dead) per region. */
  private readonly perRegion = new Map<string, number>();

  /**
   * @param deadAfterMs ratio x aggregation interval, milliseconds
   * @param forgetAfterMs a dead agent is forgotten this long after it died (-server.agent.forget.after), milliseconds
   */
  constructor(
    private readonly deadAfterMs: number,
    private readonly events: RegistryEvents = {},
    private readonly now = () => Date.now(),
    private readonly limits: RegistryLimits = { maxAgents: 10_000, maxRegions: 1_000 },
    readonly forgetAfterMs = FORGET_AFTER_MS,
  ) {}

  /** Records a heartbeat received here. @returns the entry @throws RegistryFull when a new agent would exceed a cap */
  heartbeat(a: Agent): AgentEntry {
    const e = this.record(a, this.now(), undefined);
    this.events.onHeartbeat?.(e);
    return e;
  }

  /**
   * Records a heartbeat another server received (the shared registry): applied when newer than
   * what is known here. An agent already dead is recorded as dead (it stays a mesh target until
   * forgotten, as on the server that saw it). @returns false when it was older, forgotten, or
   * refused by a cap
   */
  observe(a: AgentRecord): boolean {
    const old = this.agents.get(`${a.region}\u0000${a.ip}`);
    if (old && old.lastSeenMs >= a.lastSeenMs) return false;
    const silentMs = this.now() - a.lastSeenMs;
    if (silentMs > this.deadAfterMs + this.forgetAfterMs) return false; // forgotten: nothing to learn
    try {
      this.record(a, a.lastSeenMs, a.firstSeenMs, silentMs <= this.deadAfterMs);
      return true;
    } catch (e) {
      if (e instanceof RegistryFull) return false;
      throw e;
    }
  }

  /**
   * An agent said goodbye (Deregister): removed at once, leaving the pools. `atMs` (default now)
   * is when; a goodbye older than the agent's last heartbeat (it started again since) is ignored.
   * @returns the removed entry, or undefined when unknown
   */
  remove(region: string, ip: string, atMs = this.now()): AgentEntry | undefined {
    const key = `${region}\u0000${ip}`;
    const e = this.agents.get(key);
    if (!e || e.lastSeenMs > atMs) return undefined;
    this.delete(key, e, true);
    return e;
  }

  /** Like remove(), and shares the goodbye with other servers (onGoodbye). */
  goodbye(region: string, ip: string): AgentEntry | undefined {
    const t = this.now();
    const e = this.remove(region, ip, t);
    if (e) this.events.onGoodbye?.(e, t);
    return e;
  }

  private record(a: Pick<Agent, "region" | "ip" | "version" | "hostname"> & Partial<Pick<Agent, "udpPort" | "tcpPort">>, t: number, firstSeenMs: number | undefined, alive = true): AgentEntry {
    const key = `${a.region}\u0000${a.ip}`;
    const old = this.agents.get(key);
    if (!old) {
      if (this.agents.size >= this.limits.maxAgents) throw new RegistryFull("max_agents");
      if (!this.perRegion.has(a.region) && this.perRegion.size >= this.limits.maxRegions) throw new RegistryFull("max_regions");
      this.perRegion.set(a.region, (this.perRegion.get(a.region) ?? 0) + 1);
    }
    const entry: AgentEntry = {
      region: a.region, ip: a.ip, version: a.version, hostname: a.hostname, udpPort: announcedPort(a.udpPort), tcpPort: announcedPort(a.tcpPort), firstSeenMs: old?.firstSeenMs ?? firstSeenMs ?? t, lastSeenMs: t, alive };
    this.agents.set(key, entry);
    if (!old) this.events.onJoin?.(entry);
    if (!old || old.alive !== alive || old.version !== a.version || portsDiffer(old, entry)) {
      this.events.onChange?.(entry, old && (old.version !== a.version || portsDiffer(old, entry)) ? old : undefined);
    }
    return entry;
  }

  private delete(key: string, e: AgentEntry, goodbye: boolean): void {
    this.agents.delete(key);
    const n = (this.perRegion.get(e.region) ?? 1) - 1;
    if (n > 0) this.perRegion.set(e.region, n);
    else this.perRegion.delete(e.region);
    this.events.onForget?.(e, goodbye);
  }

  /** Marks silent agents dead and forgets long-dead ones; call periodically. */
  sweep(): void {
    const t = this.now();
    for (const [key, e] of this.agents) {
      if (e.alive && t - e.lastSeenMs > this.deadAfterMs) {
        e.alive = false;
        this.events.onChange?.(e);
      } else if (!e.alive && t - e.lastSeenMs > this.deadAfterMs + this.forgetAfterMs) {
        this.delete(key, e, false);
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
