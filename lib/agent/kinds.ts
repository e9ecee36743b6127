/** The registry of probe kinds' agent halves (lib/probes/kind.ts), keyed by prober_type. */
import type { Prober, ProberType, ResultOf, TargetOf } from "../probes/kind.ts";
import { DnsProber } from "../probes/dns/prober.ts";
import { GrpcProber } from "../probes/grpc/prober.ts";
import { HttpPhaseProber } from "../probes/http/prober.ts";
import { IcmpEchoProber, echoOptions } from "../probes/icmp/prober.ts";
import { TcpProber } from "../probes/tcp/prober.ts";

/** HTTP probes running at once per agent; also the limit of each other connection-based kind (tcp, dns, grpc). */
export const HTTP_CONCURRENCY = 64;

/**
 * Adaptive re-probing of a kind (docs/probes.md "Error state"): what a failed round is, what a
 * re-probe costs, and how a result records the schedule it ran on.
 */
export interface Reprobe<K extends ProberType> {
  /** Packets one round against `t` sends (charged to -agent.probe.error.budget). */
  cost(t: TargetOf<K>): number;
  /** undefined when the round was clean; when it lost packets or failed, what to log about it. */
  failure(r: ResultOf<K>): Record<string, unknown> | undefined;
  /** Records on the result the share of a probe interval it samples (0..1) and whether the target was in error state. */
  mark(r: ResultOf<K>, sampleWeight: number, errorState: boolean): void;
}

/** An agent half: how to make the kind's prober and how many of its rounds may run at once. */
export interface AgentKind<K extends ProberType> {
  create(): Prober<K>;
  /** Rounds of this kind in flight at once (ICMP rounds share one socket and cost no fd each). */
  concurrency: number;
  /** Absent: the kind keeps its regular schedule when failing (HTTP: a web endpoint is not hammered). */
  reprobe?: Reprobe<K>;
}

export const AGENT_KINDS: { [K in ProberType]: AgentKind<K> } = {
  icmp: {
    create: () => new IcmpEchoProber(),
    concurrency: Infinity,
    reprobe: {
      cost: (t) => echoOptions(t.module).count,
      failure: (r) => (r.error !== "" || r.sent === 0 || r.received < r.sent ? { sent: r.sent, received: r.received, ...(r.error ? { err: r.error } : {}) } : undefined),
      mark(r, sampleWeight, errorState) {
        r.sampleWeight = sampleWeight;
        r.errorState = errorState;
      },
    },
  },
  http: { create: () => new HttpPhaseProber(), concurrency: HTTP_CONCURRENCY },
  tcp: { create: () => new TcpProber(), concurrency: HTTP_CONCURRENCY },
  dns: { create: () => new DnsProber(), concurrency: HTTP_CONCURRENCY },
  grpc: { create: () => new GrpcProber(), concurrency: HTTP_CONCURRENCY },
};
