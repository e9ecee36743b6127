/**
 * The TCP kind's server half (lib/probes/kind.ts): the shared check-kind ingest
 * (lib/probes/phased_ingest.ts) with the TCP phases and failed reasons. Metrics:
 * prober_tcp_probes_total, prober_tcp_probes_failed_total, prober_tcp_failed,
 * prober_tcp_duration_seconds{phase}, prober_tcp_ssl_earliest_cert_expiry; and for the mesh's
 * connect probe (TcpModule.flows >= 1, results with TcpResult.flows), per region pair:
 * prober_tcp_connect_loss_rate and prober_tcp_flows_lossy (Pingmesh: a connect that needed a SYN
 * retransmission is a drop; lib/probes/flow/lossy.ts decides which flows are lossy).
 */
import type { KindIngest, KindWindow } from "../../aggregation/window.ts";
import type { SeriesStore } from "../../metrics/series.ts";
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
  flowsLossy: number;
  /** Every flow of the window, lossy first. */
  flows: FlowRow[];
  windowEndMs: number;
}

const PAIR = ["source_region", "target_region"] as const;

/** The TCP metrics on `store` and the ingest that feeds them. */
export function tcpIngest(store: SeriesStore): KindIngest<TcpResult> & { latest(): readonly PhasedAggregate[]; latestConnect(): readonly TcpConnectAggregate[] } {
  const checks = phasedIngest(TCP_SPEC, store);
  const loss = store.gauge({
    name: "prober_tcp_connect_loss_rate", type: "gauge", labelNames: PAIR,
    help: "Share of the mesh's TCP connect probes (flows >= 1) that were dropped in the last published window, 0..1: (attempted - established by the first SYN) / attempted.",
    doc: "A connect that needed a SYN retransmission counts as dropped (Pingmesh): the first SYN was lost. Only results with per-flow stats (the connect probe) count; prober_tcp_duration_seconds{phase=\"connect\"} keeps the per-target connect time.",
  });
  const lossy = store.gauge({
    name: "prober_tcp_flows_lossy", type: "gauge", labelNames: PAIR,
    help: "(agent, target, flow) triples of the pair whose connects are lossy: a source port that lost at least half of its connects while the link's other flows together lost under 5% (lib/probes/flow/lossy.ts), counts summed over the windows of the last minute (one window holds one connect per flow and round).",
    doc: "The ECMP / LAG signature for TCP; /api/v1/pair lists the flows.",
  });
  let latestConnect: TcpConnectAggregate[] = [];
  const flowHistory = new FlowHistory();
  return {
    latest: checks.latest,
    latestConnect: () => latestConnect,
    count: checks.count,
    openWindow(): KindWindow<TcpResult> {
      const inner = checks.openWindow();
      const pairs = new Map<string, { sourceRegion: string; targetRegion: string; flows: FlowWindow }>();
      return {
        add(x) {
          inner.add(x);
          if (x.result.flows.length === 0) return;
          const key = `${x.sourceRegion}\u0000${x.result.targetRegion}`;
          let p = pairs.get(key);
          if (!p) pairs.set(key, (p = { sourceRegion: x.sourceRegion, targetRegion: x.result.targetRegion, flows: new FlowWindow("tcp") }));
          p.flows.add(x.agentIp, x.result.address, x.result.flows);
        },
        publish(windowEndMs) {
          inner.publish(windowEndMs);
          latestConnect = [];
          for (const p of pairs.values()) {
            const { sent, received } = p.flows.totals();
            const flows = p.flows.rows(flowHistory, `${p.sourceRegion}\u0000${p.targetRegion}`, windowEndMs);
            const a: TcpConnectAggregate = {
              sourceRegion: p.sourceRegion, targetRegion: p.targetRegion, attempted: sent, established: received,
              lossRatio: sent > 0 ? (sent - received) / sent : 1, flowsLossy: flows.filter((f) => f.lossy).length, flows, windowEndMs,
            };
            const l = { source_region: a.sourceRegion, target_region: a.targetRegion };
            loss.set(l, a.lossRatio);
            lossy.set(l, a.flowsLossy);
            latestConnect.push(a);
          }
        },
      };
    },
  };
}
