/** The registry of probe kinds' agent halves (lib/probes/kind.ts), keyed by prober_type. */
import type { Prober, ProberType } from "../probes/kind.ts";
import { HttpPhaseProber } from "../probes/http/prober.ts";
import { IcmpEchoProber } from "../probes/icmp/prober.ts";

/** HTTP probes running at once per agent. */
export const HTTP_CONCURRENCY = 64;

/** An agent half: how to make the kind's prober and how many of its rounds may run at once. */
export interface AgentKind<K extends ProberType> {
  create(): Prober<K>;
  /** Rounds of this kind in flight at once (ICMP rounds share one socket and cost no fd each). */
  concurrency: number;
}

export const AGENT_KINDS: { [K in ProberType]: AgentKind<K> } = {
  icmp: { create: () => new IcmpEchoProber(), concurrency: Infinity },
  http: { create: () => new HttpPhaseProber(), concurrency: HTTP_CONCURRENCY },
};
