/**
 * The ICMP kind's server half (lib/probes/kind.ts): validation of pushed IcmpResults, the
 * cumulative series (packet counters, RTT histogram) and the per-window aggregation of
 * docs/aggregation.md "ICMP", published as ProberMesh's gauges. No FFI: the server loads this,
 * never the prober.
 *
 * A window folds all agents of a source region and all targets of a target region into one
 * bucket. It keeps running sums, not results: O(1) per result, O(pairs + agent-target pairs) memory.
 */
import type { KindIngest, KindWindow } from "../../aggregation/window.ts";
import { Moments } from "../../aggregation/moments.ts";
import type { SeriesStore } from "../../metrics/series.ts";
import type { IcmpResult } from "../../rpc/gen/probermesh/v1/icmp_pb.ts";
import { checkCommon, seconds } from "../result_common.ts";
import { RTT_BUCKET_BOUNDS, RTT_BUCKETS, rttBucketCounts } from "./buckets.ts";


/** Upper bound for packets in one ICMP result. */
const MAX_PACKETS = 100_000;

/** One ICMP region pair over one window (plain data; also what the web view shows). */
export interface IcmpAggregate {
  sourceRegion: string;
  targetRegion: string;
  sent: number;
  received: number;
  /**
   * Loss ratio 0..1 (ProberMesh published 0..100): Σ w·lost / Σ w·sent, each round's packets
   * weighted by the share of a probe interval it samples (IcmpResult.sample_weight), so a target
   * re-probed every second while in error state counts for the time it was in error, not for its
   * extra packets (docs/aggregation.md). Σ lost / Σ sent when every round is a regular one.
   * 1 when nothing was sent.
   */
  lossRatio: number;
  /** (agent, target) links of the pair with a round in error state in this window. */
  errorStateLinks: number;
  /** RTT statistics over every received packet, seconds; undefined when none was received. */
  rttMean?: number;
  rttMin?: number;
  rttMax?: number;
  /** Mean of the per-(agent, target) RTT standard deviations, seconds. */
  jitter?: number;
  /** Mean resolve time over results that resolved, seconds. */
  resolveMean?: number;
  /**
   * Failed rounds in regular-round equivalents: Σ w over failed results (resolve error, no socket,
   * or 100 % loss), w = sample_weight as for lossRatio, so error-state re-probes of a dead target
   * do not multiply its failures (one link failing all window long reads window / probe interval).
   */
  failed: number;
  /** End of the window, unix ms. */
  windowEndMs: number;
  /** Per (agent, target address): which agent or address makes the pair bad. */
  links: IcmpLink[];
  /**
   * True when the server inferred this pair (no agent of the source region reported it): the
   * source region is silent and the reverse direction lost everything (lib/server/unreachable.ts).
   * lossRatio is then 1 and sent, received, links are empty.
   */
  inferred?: boolean;
}

/** One agent's probing of one target address over one window. RTTs in seconds. */
export interface IcmpLink {
  agentIp: string;
  address: string;
  sent: number;
  received: number;
  /** Time-weighted like IcmpAggregate.lossRatio. */
  lossRatio: number;
  /** A round of this link ran in error state in this window. */
  errorState: boolean;
  /** Undefined when nothing came back. */
  rttMean?: number;
  jitter?: number;
}

/**
 * Checks the numbers of an ICMP result (assignment is checked by the caller).
 * @returns "" or why it is unusable
 */
export function checkIcmpResult(r: IcmpResult): string {
  const common = checkCommon(r);
  if (common) return common;
  if (r.sent > MAX_PACKETS) return "sent out of range";
  if (r.received > r.sent) return "received > sent";
  // The RTTs come as a histogram (agents since 0.2) or one by one (0.1), never both.
  if (r.rttBucketCounts.length !== 0) {
    if (r.rttsSeconds.length !== 0) return "rtts_seconds and rtt_bucket_counts both set";
    if (r.rttBucketCounts.length !== RTT_BUCKETS) return `rtt_bucket_counts must have ${RTT_BUCKETS} entries`;
    if (r.rttBucketCounts.reduce((a, b) => a + b, 0) !== r.received) return "rtt_bucket_counts do not add up to received";
  } else if (r.rttsSeconds.length !== r.received) return "rtts_seconds length != received";
  if (!r.rttsSeconds.every(seconds)) return "rtt out of range";
  if (![r.minSeconds, r.meanSeconds, r.maxSeconds, r.stddevSeconds, r.resolveSeconds].every(seconds)) return "statistic out of range";
  if (!(Number.isFinite(r.sampleWeight) && r.sampleWeight >= 0 && r.sampleWeight <= 1)) return "sample_weight out of range 0..1";
  if (r.received > 0 && !(r.minSeconds <= r.meanSeconds + 1e-12 && r.meanSeconds <= r.maxSeconds + 1e-12)) return "min <= mean <= max does not hold";
  return "";
}

/** The result's IcmpResult.sample_weight; 1 for agents before 0.3 (which send 0). */
export function sampleWeight(r: IcmpResult): number {
  return r.sampleWeight > 0 ? r.sampleWeight : 1;
}

/** A failed ICMP result: resolve error, no packet sent, or 100 % loss. */
export function isIcmpFailure(r: IcmpResult): boolean {
  return r.error.startsWith("resolve") || r.sent === 0 || r.received === 0;
}

const PAIR = ["source_region", "target_region"] as const;

/** The ICMP metrics on `store` and the ingest that feeds them. */
export function icmpIngest(store: SeriesStore): KindIngest<IcmpResult> & {
  latest(): readonly IcmpAggregate[];
  /**
   * Publishes, for the window just published, the pairs the server inferred as unreachable (loss 1,
   * prober_icmp_pair_inferred 1); pairs inferred before and not now lose both series unless a
   * real result set their loss since.
   */
  publishInferred(pairs: readonly { sourceRegion: string; targetRegion: string }[], windowEndMs: number): void;
} {
  const failed = store.gauge({
    name: "prober_icmp_failed", type: "gauge", labelNames: PAIR,
    help: "ICMP rounds that failed (resolve error, no packet sent, or 100% loss) in the last published aggregation window, in regular-round equivalents: each failed result counts its sample_weight.",
    doc: "Σ w over failed results, w = sample_weight as for the loss, so error-state re-probes (every second) count for the share of a probe interval they sample, not 1 each: a link failing throughout reads about window / probe interval, as with regular rounds only (docs/aggregation.md). Fractional.",
  });
  const duration = store.gauge({
    name: "prober_icmp_duration_seconds", type: "gauge", labelNames: [...PAIR, "phase"],
    help: "ICMP phase durations in seconds over the last published window: resolve (mean), rtt (mean over received packets), min, max.",
    doc: "phase=rtt/min/max are absent for a window in which the pair received no packet; resolve is absent when no result resolved a name.",
  });
  const loss = store.gauge({
    name: "prober_icmp_packet_loss_rate", type: "gauge", labelNames: PAIR, help: "ICMP packet loss ratio 0..1 in the last published aggregation window.",
    doc: "Σ w·lost / Σ w·sent, w = each round's sample_weight (the share of a probe interval it samples), so error-state re-probes count for their time, not their packets (docs/aggregation.md).",
  });
  const errorLinks = store.gauge({
    name: "prober_icmp_error_state_links", type: "gauge", labelNames: PAIR,
    help: "(agent, target) links of the pair that were re-probed in error state in the last published window (their last round lost packets or failed).",
  });
  const jitter = store.gauge({ name: "prober_icmp_jitter_stddev_seconds", type: "gauge", labelNames: PAIR, help: "Mean of per-(agent, target) RTT standard deviations in seconds over the last published window.", doc: "Absent for a window in which the pair received no packet." });
  const histogram = store.histogram({
    name: "prober_icmp_duration_seconds_total", type: "histogram", labelNames: PAIR, buckets: RTT_BUCKET_BOUNDS,
    help: "RTT of every received ICMP echo reply, seconds (cumulative: every accepted result, backlog included).",
    doc: "Buckets 50 µs × 2^k, k = 0..18. The name is ProberMesh's (its dashboards keep working).",
  });
  const sentTotal = store.counter({ name: "prober_icmp_packets_sent_total", type: "counter", labelNames: PAIR, help: "ICMP echo requests sent (cumulative: every accepted result, backlog included)." });
  const receivedTotal = store.counter({ name: "prober_icmp_packets_received_total", type: "counter", labelNames: PAIR, help: "ICMP echo replies received (cumulative); loss over any range = 1 - increase(received) / increase(sent)." });
  const weightedSent = store.counter({
    name: "prober_icmp_weighted_packets_sent_total", type: "counter", labelNames: PAIR,
    help: "ICMP echo requests sent, each round's counted times its sample_weight (cumulative).",
    doc: "A regular round counts fully, an error-state re-probe by the share of the probe interval it samples, so 1 - increase(weighted received) / increase(weighted sent) is the time-weighted loss over any range, exact across servers (docs/aggregation.md).",
  });
  const weightedReceived = store.counter({
    name: "prober_icmp_weighted_packets_received_total", type: "counter", labelNames: PAIR,
    help: "ICMP echo replies received, each round's counted times its sample_weight (cumulative).",
  });
  const inferredGauge = store.gauge({
    name: "prober_icmp_pair_inferred", type: "gauge", labelNames: PAIR,
    help: "1 while the pair's loss is inferred by the server, not reported: every agent of source_region is silent and every echo to them from target_region was lost (ICMP echo is a round trip), so prober_icmp_packet_loss_rate reads 1.",
    doc: "Present only while inferred (docs/aggregation.md \"A region cut off\"). The silent agents' own results arrive after reconnection, into the cumulative counters.",
  });
  let latest: IcmpAggregate[] = [];
  /** Pairs inferred in the last window (key source\0target). */
  let inferredNow = new Set<string>();

  const RTT_PHASES = ["rtt", "min", "max"] as const;

  return {
    latest: () => latest,

    publishInferred(pairs, windowEndMs) {
      // Inferred entries of an earlier call (a tick that published no ICMP window) are replaced.
      latest = latest.filter((a) => !a.inferred);
      const next = new Set<string>();
      const reported = new Set(latest.map((a) => `${a.sourceRegion}\u0000${a.targetRegion}`));
      for (const { sourceRegion, targetRegion } of pairs) {
        const k = `${sourceRegion}\u0000${targetRegion}`;
        if (reported.has(k)) continue;
        next.add(k);
        const l = { source_region: sourceRegion, target_region: targetRegion };
        loss.set(l, 1);
        inferredGauge.set(l, 1);
        latest.push({ sourceRegion, targetRegion, sent: 0, received: 0, lossRatio: 1, errorStateLinks: 0, failed: 0, windowEndMs, links: [], inferred: true });
      }
      for (const k of inferredNow) {
        if (next.has(k)) continue;
        const [source_region, target_region] = k.split("\u0000") as [string, string];
        inferredGauge.remove({ source_region, target_region });
        if (!reported.has(k)) loss.remove({ source_region, target_region });
      }
      inferredNow = next;
    },

    count({ sourceRegion, result: r }) {
      const l = { source_region: sourceRegion, target_region: r.targetRegion };
      sentTotal.inc(l, r.sent);
      receivedTotal.inc(l, r.received);
      const w = sampleWeight(r);
      weightedSent.inc(l, r.sent * w);
      weightedReceived.inc(l, r.received * w);
      if (r.received === 0) return;
      // Counts as sent (0.2 agents), or made from the RTTs (0.1 agents): O(buckets) to publish.
      const counts = r.rttBucketCounts.length ? r.rttBucketCounts : rttBucketCounts(r.rttsSeconds);
      histogram.addCounts(l, counts, r.meanSeconds * r.received);
    },

    openWindow(): KindWindow<IcmpResult> {
      /** Time-weighted loss: Σ w·lost and Σ w·sent, w = the share of a probe interval a round samples. */
      type Weighted = { lossW: number; w: number };
      type Link = { agentIp: string; address: string; sent: number; received: number; rtt: Moments; loss: Weighted; errorState: boolean };
      type Pair = { agg: IcmpAggregate; rtt: Moments; resolveSum: number; resolveN: number; perAgentTarget: Map<string, Link> };
      const ratio = (x: Weighted) => (x.w > 0 ? x.lossW / x.w : 1);
      const pairs = new Map<string, Pair>();
      return {
        add({ sourceRegion, agentIp, result: r }) {
          const k = `${sourceRegion}\u0000${r.targetRegion}`;
          let p = pairs.get(k);
          if (!p) {
            p = {
              agg: { sourceRegion, targetRegion: r.targetRegion, sent: 0, received: 0, lossRatio: 1, errorStateLinks: 0, failed: 0, windowEndMs: 0, links: [] },
              rtt: new Moments(), resolveSum: 0, resolveN: 0, perAgentTarget: new Map(),
            };
            pairs.set(k, p);
          }
          p.agg.sent += r.sent;
          p.agg.received += r.received;
          if (isIcmpFailure(r)) p.agg.failed += sampleWeight(r);
          if (r.resolvedIp) {
            p.resolveSum += r.resolveSeconds;
            p.resolveN++;
          }
          const at = `${agentIp}\u0000${r.address}`;
          let link = p.perAgentTarget.get(at);
          if (!link) p.perAgentTarget.set(at, (link = { agentIp, address: r.address, sent: 0, received: 0, rtt: new Moments(), loss: { lossW: 0, w: 0 }, errorState: false }));
          link.sent += r.sent;
          link.received += r.received;
          link.errorState ||= r.errorState;
          if (r.sent > 0) {
            const w = sampleWeight(r);
            link.loss.lossW += (r.sent - r.received) * w;
            link.loss.w += r.sent * w;
          }
          if (r.received === 0) return;
          const s = { n: r.received, min: r.minSeconds, mean: r.meanSeconds, max: r.maxSeconds, stddev: r.stddevSeconds };
          p.rtt.merge(s);
          link.rtt.merge(s);
        },

        publish(windowEndMs) {
          latest = [];
          for (const p of pairs.values()) {
            const a = p.agg;
            a.windowEndMs = windowEndMs;
            a.links = [...p.perAgentTarget.values()].map((x) => ({
              agentIp: x.agentIp, address: x.address, sent: x.sent, received: x.received, lossRatio: ratio(x.loss), errorState: x.errorState,
              ...(x.rtt.n > 0 ? { rttMean: x.rtt.mean, jitter: x.rtt.stddev } : {}),
            }));
            const l = { source_region: a.sourceRegion, target_region: a.targetRegion };
            // The pair's weighted sums are its links' sums.
            const pairLoss: Weighted = { lossW: 0, w: 0 };
            for (const x of p.perAgentTarget.values()) (pairLoss.lossW += x.loss.lossW), (pairLoss.w += x.loss.w);
            a.lossRatio = ratio(pairLoss);
            a.errorStateLinks = a.links.filter((x) => x.errorState).length;
            failed.set(l, a.failed);
            loss.set(l, a.lossRatio);
            errorLinks.set(l, a.errorStateLinks);
            if (p.resolveN) duration.set({ ...l, phase: "resolve" }, (a.resolveMean = p.resolveSum / p.resolveN));
            else duration.remove({ ...l, phase: "resolve" });
            if (p.rtt.n > 0) {
              a.rttMean = p.rtt.mean;
              a.rttMin = p.rtt.min;
              a.rttMax = p.rtt.max;
              // Mean over the (agent, target) pairs that received something.
              let sum = 0, n = 0;
              for (const x of p.perAgentTarget.values()) if (x.rtt.n > 0) (sum += x.rtt.stddev), n++;
              a.jitter = sum / n;
              duration.set({ ...l, phase: "rtt" }, a.rttMean);
              duration.set({ ...l, phase: "min" }, a.rttMin);
              duration.set({ ...l, phase: "max" }, a.rttMax);
              jitter.set(l, a.jitter);
            } else {
              // Honest windows: no packet came back, so there is no RTT to show (loss 1 remains).
              for (const phase of RTT_PHASES) duration.remove({ ...l, phase });
              jitter.remove(l);
            }
            latest.push(a);
          }
        },
      };
    },
  };
}
