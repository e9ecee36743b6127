/**
 * The udp kind's server half (lib/probes/kind.ts): the shared loss-kind ingest
 * (lib/probes/echo_ingest.ts), so the udp family is exactly the ICMP one with the udp prefix
 * (prober_udp_packet_loss_rate, _duration_seconds{phase}, _jitter_stddev_seconds, the RTT
 * histogram, the packet counters, _failed, _pair_inferred), plus prober_udp_flows_lossy: the
 * (agent, target, flow) triples of a pair that lossyFlows (lib/probes/flow/lossy.ts) calls lossy
 * over the window. RTTs are the responder's dwell subtracted (NetNORAD). No FFI here.
 *
 * The one-way loss of the requests (forward_sent / forward_lost, lib/probes/udp/oneway.ts) goes
 * to each (agent, target) link of the window (EchoLink.forwardSent / forwardLost), where the
 * localiser tells a region's way in from its way out.
 */
import type { SeriesStore } from "../../metrics/series.ts";
import type { UdpResult } from "../../rpc/gen/probermesh/v1/udp_pb.ts";
import { checkEchoResult, echoIngest, type EchoIngest, type EchoSpec } from "../echo_ingest.ts";
import { checkFlows } from "../flow_ingest.ts";
import { seconds } from "../result_common.ts";
import { MAX_DSCP, UDP_MAX_FLOWS } from "./defaults.ts";
import { MAX_SPAN } from "./oneway.ts";

/** UDP as a loss kind. */
export const UDP_SPEC: EchoSpec<UdpResult> = {
  kind: "udp",
  title: "UDP",
  request: "probe",
  reply: "reply",
  roundTrip: "a UDP probe and its reply are a round trip",
  histogramDoc: "The responder's dwell (its send time minus its kernel receive time) is subtracted (NetNORAD).",
  bucketCounts: (r) => r.rttBucketCounts,
  flows: (r) => r.flows,
  oneWay: (r) => ({ sent: r.forwardSent, lost: r.forwardLost }),
  check(r) {
    // Agents send the histogram whenever something came back (no one-by-one RTTs in udp).
    if (r.received > 0 && r.rttBucketCounts.length === 0) return "rtt_bucket_counts missing";
    if (r.duplicates > 100_000 || r.reordered > r.received) return "duplicates or reordered out of range";
    if (!seconds(r.dwellMeanSeconds)) return "dwell_mean_seconds out of range";
    if (r.dscp > MAX_DSCP) return `dscp out of range 0..${MAX_DSCP}`;
    // Each reply closes at most one span of at most MAX_SPAN requests, and a span ends with a
    // request that arrived (oneway.ts): so forward_lost < forward_sent <= received * MAX_SPAN.
    if (r.forwardSent > r.received * MAX_SPAN) return `forward_sent out of range (received * ${MAX_SPAN} at most)`;
    if (r.forwardLost > 0 && r.forwardLost >= r.forwardSent) return "forward_lost must be below forward_sent";
    const flows = checkFlows(r.flows, UDP_MAX_FLOWS);
    if (flows) return flows;
    let sent = 0, received = 0;
    for (const f of r.flows) (sent += f.sent), (received += f.received);
    if (r.flows.length && (sent !== r.sent || received !== r.received)) return "flows do not add up to sent / received";
    return "";
  },
};

/** Checks the numbers of a udp result (assignment is checked by the caller). @returns "" or why it is unusable */
export const checkUdpResult = (r: UdpResult): string => checkEchoResult(UDP_SPEC, r);

/** The udp metrics on `store` and the ingest that feeds them. */
export const udpIngest = (store: SeriesStore): EchoIngest<UdpResult> => echoIngest(UDP_SPEC, store);
