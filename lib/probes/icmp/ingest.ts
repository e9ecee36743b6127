/**
 * The ICMP kind's server half (lib/probes/kind.ts): the shared loss-kind ingest
 * (lib/probes/echo_ingest.ts: validation, the cumulative series, the per-window aggregation of
 * docs/aggregation.md "ICMP") with ICMP's names and its two RTT encodings. No FFI: the server
 * loads this, never the prober.
 */
import type { SeriesStore } from "../../metrics/series.ts";
import type { IcmpResult } from "../../rpc/gen/probermesh/v1/icmp_pb.ts";
import { checkEchoResult, echoIngest, isEchoFailure, type EchoAggregate, type EchoIngest, type EchoLink, type EchoSpec } from "../echo_ingest.ts";
import { seconds } from "../result_common.ts";
import { rttBucketCounts } from "./buckets.ts";

export { sampleWeight } from "../echo_ingest.ts";

/** One ICMP region pair over one window (plain data; also what the web view shows). */
export type IcmpAggregate = EchoAggregate;
/** One agent's probing of one target address over one window. RTTs in seconds. */
export type IcmpLink = EchoLink;

/** ICMP as a loss kind. */
export const ICMP_SPEC: EchoSpec<IcmpResult> = {
  kind: "icmp",
  title: "ICMP",
  request: "echo request",
  reply: "echo reply",
  roundTrip: "ICMP echo is a round trip",
  histogramDoc: "The name is ProberMesh's (its dashboards keep working).",
  // Counts as sent (0.2 agents), or made from the RTTs (0.1 agents): O(buckets) to publish.
  bucketCounts: (r) => (r.rttBucketCounts.length ? r.rttBucketCounts : rttBucketCounts(r.rttsSeconds)),
  check(r) {
    // The RTTs come as a histogram (agents since 0.2) or one by one (0.1), never both.
    if (r.rttBucketCounts.length !== 0) {
      if (r.rttsSeconds.length !== 0) return "rtts_seconds and rtt_bucket_counts both set";
    } else if (r.rttsSeconds.length !== r.received) return "rtts_seconds length != received";
    if (!r.rttsSeconds.every(seconds)) return "rtt out of range";
    return "";
  },
};

/**
 * Checks the numbers of an ICMP result (assignment is checked by the caller).
 * @returns "" or why it is unusable
 */
export const checkIcmpResult = (r: IcmpResult): string => checkEchoResult(ICMP_SPEC, r);

/** A failed ICMP result: resolve error, no packet sent, or 100 % loss. */
export const isIcmpFailure: (r: IcmpResult) => boolean = isEchoFailure;

/** The ICMP metrics on `store` and the ingest that feeds them. */
export const icmpIngest = (store: SeriesStore): EchoIngest<IcmpResult> => echoIngest(ICMP_SPEC, store);
