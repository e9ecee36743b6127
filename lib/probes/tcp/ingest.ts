/**
 * The TCP kind's server half (lib/probes/kind.ts): the shared check-kind ingest
 * (lib/probes/phased_ingest.ts) with the TCP phases and failed reasons. Metrics:
 * prober_tcp_probes_total, prober_tcp_probes_failed_total, prober_tcp_failed,
 * prober_tcp_duration_seconds{phase}, prober_tcp_ssl_earliest_cert_expiry, per target. The mesh's
 * connect probe (TcpModule.flows >= 1, results with TcpResult.flows) is counted per region pair
 * only, like ICMP (its targets are agents: per-target series would grow with agents x regions):
 * prober_tcp_connect_loss_rate, prober_tcp_connect_duration_seconds, prober_tcp_flows_lossy and the
 * counters prober_tcp_connects_total / prober_tcp_connects_dropped_total (Pingmesh: a connect that
 * needed a SYN retransmission is a drop; lib/probes/flow/lossy.ts decides which flows are lossy).
 */
import type { KindIngest, KindWindow } from "../../aggregation/window.ts";
import { Moments } from "../../aggregation/moments.ts";
import type { SeriesStore } from "../../metrics/series.ts";
import type { Steps } from "../../steps.ts";
import type { TcpResult } from "../../rpc/gen/probermesh/v1/tcp_pb.ts";
import { checkFlows, FlowHistory, FlowWindow, type FlowRow } from "../flow_ingest.ts";
import { checkPhasedResult, phasedIngest, type PhasedAggregate, type PhasedSpec } from "../phased_ingest.ts";
import { TCP_MAX_FLOWS } from "./defaults.ts";
import { FAILED_REASON_DOCS } from "./failed_reason.ts";

/**
 * The `phase` label's values of prober_tcp_duration_seconds, in order: resolve (name -> address),
 * connect (TCP established), tls (every handshake of the round summed: `tls: true` and `starttls` steps).
 */
export const TCP_PHASES = ["resolve", "connect", "tls"] as const;

/** TCP as a check kind. */
export const TCP_SPEC: PhasedSpec<TcpResult, (typeof TCP_PHASES)[number]> = {
  kind: "tcp",
  title: "TCP",
  phases: TCP_PHASES,
  phaseSeconds: (r) => [r.resolveSeconds, r.connectSeconds, r.tlsSeconds],
  address: (r) => r.address,
  failedReasons: FAILED_REASON_DOCS,
  tls: true,
  check: (r) => checkFlows(r.flows, TCP_MAX_FLOWS) || (r.flows.some((f) => f.sent > 1) ? "a tcp flow attempts one connect per round" : ""),
};

/** Checks the numbers of a TCP result (assignment is checked by the caller). @returns "" or why it is unusable */
export const checkTcpResult = (r: TcpResult): string => checkPhasedResult(TCP_SPEC, r);

/** One region pair's connect probes over one window (plain data; the API's tcp_connect and flows). */
export interface TcpConnectAggregate {
  sourceRegion: string;
  targetRegion: string;
  /** Connects attempted / established by the first SYN. */
  attempted: number;
  established: number;
  /** (attempted - established) / attempted, 0..1. */
  lossRatio: number;
  /** Mean connect time of the connects established by the first SYN, seconds (undefined: none). */
  connectMean?: number;
  flowsLossy: number;
  /** Every flow of the window, lossy first. */
  flows: FlowRow[];
  /** This window's connects per (agent, target) link, flows summed (not the flows' judging span). */
  links: { agentIp: string; address: string; sent: number; received: number }[];
  windowEndMs: number;
}

const PAIR = ["source_region", "target_region"] as const;

/** The TCP metrics on `store` and the ingest that feeds them. */
export function tcpIngest(store: SeriesStore): KindIngest<TcpResult> & { latest(): readonly PhasedAggregate[]; latestConnect(): readonly TcpConnectAggregate[] } {
  const checks = phasedIngest(TCP_SPEC, store);
  const loss = store.gauge({
    name: "prober_tcp_connect_loss_rate", type: "gauge", labelNames: PAIR,
    help: "Share of the mesh's TCP connect probes (flows >= 1) that were dropped in the last published window, 0..1: (attempted - established by the first SYN) / attempted.",
    doc: "A connect that needed a SYN retransmission counts as dropped (Pingmesh): the first SYN was lost. Only results with per-flow stats (the connect probe) count; blackbox-style results (no flows) keep prober_tcp_duration_seconds{phase=\"connect\"} per target.",
  });
  const lossy = store.gauge({
    name: "prober_tcp_flows_lossy", type: "gauge", labelNames: PAIR,
    help: "(agent, target, flow) triples of the pair whose connects are lossy: a source port that lost at least half of its connects while the link's other flows together lost under 5% (lib/probes/flow/lossy.ts), counts summed over the newest windows that give every flow 2 connects (one window holds one connect per flow and round).",
    doc: "The ECMP / LAG signature for TCP; /api/v1/pair lists the flows.",
  });
  const connectTime = store.gauge({
    name: "prober_tcp_connect_duration_seconds", type: "gauge", labelNames: PAIR,
    help: "Mean connect time (SYN -> SYN-ACK, the kernel's first RTT sample) of the mesh's TCP connect probes established by the first SYN in the last published window, seconds.",
    doc: "Per region pair, as prober_icmp_duration_seconds{phase=\"rtt\"}; blackbox-style tcp targets keep prober_tcp_duration_seconds{phase=\"connect\"} per target. Absent for a window without an established connect.",
  });
  const connects = store.counter({ name: "prober_tcp_connects_total", type: "counter", labelNames: PAIR, help: "Connects the mesh's TCP connect probes attempted (cumulative; one per flow and round)." });
  const dropped = store.counter({
    name: "prober_tcp_connects_dropped_total", type: "counter", labelNames: PAIR,
    help: "Connects of the mesh's TCP connect probes not established by the first SYN (cumulative): refused, timed out, or established only after a SYN retransmission.",
  });
  let latestConnect: TcpConnectAggregate[] = [];
  const flowHistory = new FlowHistory();
  return {
    latest: checks.latest,
    latestConnect: () => latestConnect,
    count(x) {
      if (x.result.flows.length === 0) return checks.count(x);
      let sent = 0, received = 0;
      for (const f of x.result.flows) (sent += f.sent), (received += Math.min(f.received, f.sent));
      const l = { source_region: x.sourceRegion, target_region: x.result.targetRegion };
      connects.inc(l, sent);
      dropped.inc(l, sent - received);
    },
    openWindow(): KindWindow<TcpResult> {
      const inner = checks.openWindow();
      const pairs = new Map<string, { sourceRegion: string; targetRegion: string; flows: FlowWindow; connect: Moments }>();
      return {
        add(x) {
          if (x.result.flows.length === 0) return inner.add(x);
          const key = `${x.sourceRegion}\u0000${x.result.targetRegion}`;
          let p = pairs.get(key);
          if (!p) pairs.set(key, (p = { sourceRegion: x.sourceRegion, targetRegion: x.result.targetRegion, flows: new FlowWindow("tcp"), connect: new Moments() }));
          p.flows.add(x.agentIp, x.result.address, x.result.flows);
          for (const f of x.result.flows) if (f.received > 0) p.connect.add(f.rttMeanSeconds);
        },
        *publish(windowEndMs): Steps {
          yield* inner.publish(windowEndMs);
          // Built aside and shown at the last step, as the loss kinds do.
          const next: TcpConnectAggregate[] = [];
          for (const p of pairs.values()) {
            const { sent, received } = p.flows.totals();
            const flows = p.flows.rows(flowHistory, `${p.sourceRegion}\u0000${p.targetRegion}`, windowEndMs);
            const a: TcpConnectAggregate = {
              sourceRegion: p.sourceRegion, targetRegion: p.targetRegion, attempted: sent, established: received,
              lossRatio: sent > 0 ? (sent - received) / sent : 1, flowsLossy: flows.filter((f) => f.lossy).length, flows, links: p.flows.linkTotals(), windowEndMs,
              ...(p.connect.n > 0 ? { connectMean: p.connect.mean } : {}),
            };
            const l = { source_region: a.sourceRegion, target_region: a.targetRegion };
            if (a.connectMean !== undefined) connectTime.set(l, a.connectMean);
            else connectTime.remove(l);
            loss.set(l, a.lossRatio);
            lossy.set(l, a.flowsLossy);
            next.push(a);
            yield;
          }
          latestConnect = next;
        },
      };
    },
  };
}
