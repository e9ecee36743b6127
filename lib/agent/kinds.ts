/** The registry of probe kinds' agent halves (lib/probes/kind.ts), keyed by prober_type. */
import type { Prober, ProberType, ResultOf, TargetOf } from "../probes/kind.ts";
import { DnsProber } from "../probes/dns/prober.ts";
import { GrpcProber } from "../probes/grpc/prober.ts";
import { HttpPhaseProber } from "../probes/http/prober.ts";
import { IcmpEchoProber, echoOptions } from "../probes/icmp/prober.ts";
import { TcpProber } from "../probes/tcp/prober.ts";
import { UdpProber, udpOptions } from "../probes/udp/prober.ts";
import type { PortRange } from "../probes/flow/ports.ts";

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

/** What the agent gives a kind's prober: its flow port ranges and the mesh key. */
export interface ProberContext {
  /** -agent.udp.flow.ports / -agent.tcp.flow.ports. */
  udpFlowPorts: PortRange;
  tcpFlowPorts: PortRange;
  /** The mesh key of the last heartbeat answer (HeartbeatResponse.mesh_key); undefined before a server of 0.6 sent one. */
  meshKey: () => Uint8Array | undefined;
}

/** An agent half: how to make the kind's prober and how many of its rounds may run at once. */
export interface AgentKind<K extends ProberType> {
  create(ctx: ProberContext): Prober<K>;
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
  tcp: { create: (ctx) => new TcpProber({ flowPorts: ctx.tcpFlowPorts }), concurrency: HTTP_CONCURRENCY },
  dns: { create: () => new DnsProber(), concurrency: HTTP_CONCURRENCY },
  grpc: { create: () => new GrpcProber(), concurrency: HTTP_CONCURRENCY },
  // Rounds share the flow sockets and cost no fd each, as icmp's; a failed round is re-probed as
  // icmp's (a lossy flow is part of the loss, and error state is when the flow is traced).
  udp: {
    create: (ctx) => new UdpProber({ flowPorts: ctx.udpFlowPorts, meshKey: ctx.meshKey }),
    concurrency: Infinity,
    reprobe: {
      cost: (t) => udpOptions(t.module).count,
      failure: (r) => (r.error !== "" || r.sent === 0 || r.received < r.sent ? { sent: r.sent, received: r.received, ...(r.error ? { err: r.error } : {}) } : undefined),
      mark(r, sampleWeight, errorState) {
        r.sampleWeight = sampleWeight;
        r.errorState = errorState;
      },
    },
  },
};
