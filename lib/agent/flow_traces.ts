/**
 * Which flows of a udp or tcp round to trace (docs/probes.md "Flows lossy", Paris traceroute): a
 * Paris trace of a flow's exact 5-tuple follows the one path ECMP / LAG hashing pins it to, so it
 * shows where that flow dies while the others pass.
 *
 *   - every lossy flow of the round (lib/probes/flow/lossy.ts), reason "flow_lossy";
 *   - else, when the round failed (udp: the target enters or stays in error state; tcp: the probe
 *     failed), the flow that lost most, reason "error_state".
 *
 * At most MAX_FLOW_TRACES per round; the tracer rate-limits per (target, flow) key.
 */
import { lossyFlows } from "../probes/flow/lossy.ts";
import { splitHostPortTarget } from "../probes/host_port.ts";
import type { FlowTraceRequest } from "../probes/flow/path.ts";
import type { FlowStats } from "../rpc/gen/probermesh/v1/flow_pb.ts";
import type { TcpResult } from "../rpc/gen/probermesh/v1/tcp_pb.ts";
import type { UdpResult } from "../rpc/gen/probermesh/v1/udp_pb.ts";

/** Flow traces requested per round at most. */
export const MAX_FLOW_TRACES = 4;

/**
 * The flows of a finished round to trace.
 * @param failed udp: the round counts as failed (the kind's reprobe failure); tcp: ignored, a
 *   failed tcp round is one without success
 */
export function flowTraceRequests(kind: "udp" | "tcp", r: UdpResult | TcpResult, failed: boolean): FlowTraceRequest[] {
  const flows: FlowStats[] = r.flows;
  if (flows.length === 0) return [];
  const hp = splitHostPortTarget(r.address);
  if (!hp) return [];
  // The IP the round probed (udp); a tcp result has none: its host (an IP for mesh targets; a name is resolved by the tracer).
  const ip = "resolvedIp" in r && r.resolvedIp ? r.resolvedIp : hp.host;
  const base = { kind, targetRegion: r.targetRegion, address: r.address, ip, destinationPort: hp.port, ...("dscp" in r ? { dscp: r.dscp } : {}) };
  const lossy = lossyFlows(flows);
  if (lossy.length > 0) return lossy.slice(0, MAX_FLOW_TRACES).map((sourcePort) => ({ ...base, sourcePort, reason: "flow_lossy" as const }));
  const roundFailed = kind === "tcp" ? !(r as TcpResult).success : failed;
  if (!roundFailed) return [];
  let worst: FlowStats | undefined;
  for (const f of flows) if (f.sent > 0 && (!worst || f.sent - f.received > worst.sent - worst.received)) worst = f;
  if (!worst || worst.sent - worst.received <= 0) return [];
  return [{ ...base, sourcePort: worst.sourcePort, reason: "error_state" }];
}
