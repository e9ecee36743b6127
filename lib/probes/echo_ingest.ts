/**
 * The server half shared by the loss kinds (icmp, udp): a round is a burst of round-trip probes
 * to one target, reported as sent / received counts, RTT moments, an RTT histogram and a
 * sample_weight. One definition of their validation, cumulative series and per-window
 * aggregation (docs/aggregation.md "ICMP"; NetNORAD / Pingmesh loss and RTT per region pair), so
 * the two cannot drift apart:
 *
 *   prober_<kind>_packet_loss_rate{source_region,target_region}           time-weighted loss
 *   prober_<kind>_duration_seconds{...,phase=resolve|rtt|min|max}          window means
 *   prober_<kind>_jitter_stddev_seconds, _failed, _error_state_links       window gauges
 *   prober_<kind>_duration_seconds_total                                   RTT histogram
 *   prober_<kind>_packets_{sent,received}_total, _weighted_packets_*_total counters
 *   prober_<kind>_pair_inferred                                            lib/server/unreachable.ts
 *   prober_<kind>_flows_lossy                                              kinds with flows (udp)
 *
 * A window folds all agents of a source region and all targets of a target region into one
 * bucket. It keeps running sums, not results: O(1) per result (O(flows) with flows),
 * O(pairs + agent-target pairs) memory.
 */
import type { KindIngest, KindWindow } from "../aggregation/window.ts";
import type { Steps } from "../steps.ts";
import { Moments } from "../aggregation/moments.ts";
import type { SeriesStore } from "../metrics/series.ts";
import type { FlowStats } from "../rpc/gen/probermesh/v1/flow_pb.ts";
import { FlowHistory, FlowWindow, type FlowRow } from "./flow_ingest.ts";
import { RTT_BUCKET_BOUNDS, RTT_BUCKETS } from "./icmp/buckets.ts";
import { checkCommon, seconds, type CommonResult } from "./result_common.ts";

/** Upper bound for packets in one result. */
export const MAX_PACKETS = 100_000;

/** The fields IcmpResult and UdpResult share. */
export interface EchoResult extends CommonResult {
  address: string;
  resolvedIp: string;
  sent: number;
  received: number;
  minSeconds: number;
  meanSeconds: number;
  maxSeconds: number;
  stddevSeconds: number;
  resolveSeconds: number;
  error: string;
  rttBucketCounts: number[];
  sampleWeight: number;
  errorState: boolean;
}

/** What a loss kind tells the shared ingest about itself. */
export interface EchoSpec<R extends EchoResult> {
  /** prober_type: the metric prefix is `prober_<kind>_`. */
  kind: string;
  /** How the kind is named in help texts ("ICMP", "UDP"). */
  title: string;
  /** What a request / reply is called in help texts: ["echo request", "echo reply"], ["probe", "reply"]. */
  request: string;
  reply: string;
  /** Why a lost round trip means both directions of the pair are down (the inferred gauge's help). */
  roundTrip: string;
  /** Extra doc of the RTT histogram. */
  histogramDoc: string;
  /** The result's RTT histogram counts (RTT_BUCKETS entries); called only when received > 0. */
  bucketCounts(r: R): readonly number[];
  /** Kind-specific checks after the shared ones. @returns "" or why the result is unusable */
  check?(r: R): string;
  /** The result's per-flow stats (kinds with flows). */
  flows?(r: R): readonly FlowStats[];
  /**
   * Kinds that split loss by direction (udp): requests sent over the result's counted spans and
   * how many of them never reached the target (UdpResult.forward_sent / forward_lost); 0 / 0
   * when unknown. Summed per link into EchoLink.forwardSent / forwardLost.
   */
  oneWay?(r: R): { sent: number; lost: number };
}

/** One region pair over one window (plain data; also what the web view shows). */
export interface EchoAggregate {
  sourceRegion: string;
  targetRegion: string;
  sent: number;
  received: number;
  /**
   * Loss ratio 0..1 (ProberMesh published 0..100): Σ w·lost / Σ w·sent, each round's packets
   * weighted by the share of a probe interval it samples (sample_weight), so a target re-probed
   * every second while in error state counts for the time it was in error, not for its extra
   * packets (docs/aggregation.md). Σ lost / Σ sent when every round is a regular one.
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
  links: EchoLink[];
  /**
   * True when the server inferred this pair (no agent of the source region reported it): the
   * source region is silent and the reverse direction lost everything (lib/server/unreachable.ts).
   * lossRatio is then 1 and sent, received, links are empty.
   */
  inferred?: boolean;
  /** Kinds with flows: every flow of the window (lossy first) and how many are lossy. */
  flows?: FlowRow[];
  flowsLossy?: number;
}

/** One agent's probing of one target address over one window. RTTs in seconds. */
export interface EchoLink {
  agentIp: string;
  address: string;
  sent: number;
  received: number;
  /** Time-weighted like EchoAggregate.lossRatio. */
  lossRatio: number;
  /** A round of this link ran in error state in this window. */
  errorState: boolean;
  /** Undefined when nothing came back. */
  rttMean?: number;
  jitter?: number;
  /**
   * Kinds with one-way counts (udp, EchoSpec.oneWay): requests sent over the window's counted
   * spans and those of them lost on the way to the target, summed over the link's results (not
   * time-weighted). Absent when no result of the link counted a span (0.6 responders, icmp).
   * forwardLost / forwardSent is the loss towards the target; the rest of lossRatio is the way back.
   */
  forwardSent?: number;
  forwardLost?: number;
}

/** The result's sample_weight; 1 for agents before 0.3 (which send 0). */
export function sampleWeight(r: EchoResult): number {
  return r.sampleWeight > 0 ? r.sampleWeight : 1;
}

/** A failed round: resolve error, no packet sent, or 100 % loss. */
export function isEchoFailure(r: EchoResult): boolean {
  return r.error.startsWith("resolve") || r.sent === 0 || r.received === 0;
}

/**
 * Checks the shared numbers of a result (assignment is checked by the caller), then the spec's.
 * @returns "" or why it is unusable
 */
export function checkEchoResult<R extends EchoResult>(spec: EchoSpec<R>, r: R): string {
  const common = checkCommon(r);
  if (common) return common;
  if (r.sent > MAX_PACKETS) return "sent out of range";
  if (r.received > r.sent) return "received > sent";
  if (r.rttBucketCounts.length !== 0) {
    if (r.rttBucketCounts.length !== RTT_BUCKETS) return `rtt_bucket_counts must have ${RTT_BUCKETS} entries`;
    if (r.rttBucketCounts.reduce((a, b) => a + b, 0) !== r.received) return "rtt_bucket_counts do not add up to received";
  }
  if (![r.minSeconds, r.meanSeconds, r.maxSeconds, r.stddevSeconds, r.resolveSeconds].every(seconds)) return "statistic out of range";
  if (!(Number.isFinite(r.sampleWeight) && r.sampleWeight >= 0 && r.sampleWeight <= 1)) return "sample_weight out of range 0..1";
  if (r.received > 0 && !(r.minSeconds <= r.meanSeconds + 1e-12 && r.meanSeconds <= r.maxSeconds + 1e-12)) return "min <= mean <= max does not hold";
  return spec.check?.(r) ?? "";
}

const PAIR = ["source_region", "target_region"] as const;
const RTT_PHASES = ["rtt", "min", "max"] as const;

/** What an echo ingest offers beyond KindIngest. */
export interface EchoIngest<R> extends KindIngest<R> {
  latest(): readonly EchoAggregate[];
  /**
   * Publishes, for the window just published, the pairs the server inferred as unreachable (loss 1,
   * prober_<kind>_pair_inferred 1); pairs inferred before and not now lose both series unless a
   * real result set their loss since.
   */
  publishInferred(pairs: readonly { sourceRegion: string; targetRegion: string }[], windowEndMs: number): void;
}

/** The kind's metrics on `store` and the ingest that feeds them. */
export function echoIngest<R extends EchoResult>(spec: EchoSpec<R>, store: SeriesStore): EchoIngest<R> {
  const { kind: k, title: T, request, reply } = spec;
  const failed = store.gauge({
    name: `prober_${k}_failed`, type: "gauge", labelNames: PAIR,
    help: `${T} rounds that failed (resolve error, no packet sent, or 100% loss) in the last published aggregation window, in regular-round equivalents: each failed result counts its sample_weight.`,
    doc: "Σ w over failed results, w = sample_weight as for the loss, so error-state re-probes (every second) count for the share of a probe interval they sample, not 1 each: a link failing throughout reads about window / probe interval, as with regular rounds only (docs/aggregation.md). Fractional.",
  });
  const duration = store.gauge({
    name: `prober_${k}_duration_seconds`, type: "gauge", labelNames: [...PAIR, "phase"],
    help: `${T} phase durations in seconds over the last published window: resolve (mean), rtt (mean over received packets), min, max.`,
    doc: "phase=rtt/min/max are absent for a window in which the pair received no packet; resolve is absent when no result resolved a name.",
  });
  const loss = store.gauge({
    name: `prober_${k}_packet_loss_rate`, type: "gauge", labelNames: PAIR, help: `${T} packet loss ratio 0..1 in the last published aggregation window.`,
    doc: "Σ w·lost / Σ w·sent, w = each round's sample_weight (the share of a probe interval it samples), so error-state re-probes count for their time, not their packets (docs/aggregation.md).",
  });
  const errorLinks = store.gauge({
    name: `prober_${k}_error_state_links`, type: "gauge", labelNames: PAIR,
    help: "(agent, target) links of the pair that were re-probed in error state in the last published window (their last round lost packets or failed).",
  });
  const jitter = store.gauge({ name: `prober_${k}_jitter_stddev_seconds`, type: "gauge", labelNames: PAIR, help: `Mean of per-(agent, target) RTT standard deviations in seconds over the last published window.`, doc: "Absent for a window in which the pair received no packet." });
  const histogram = store.histogram({
    name: `prober_${k}_duration_seconds_total`, type: "histogram", labelNames: PAIR, buckets: RTT_BUCKET_BOUNDS,
    help: `RTT of every received ${T} ${reply}, seconds (cumulative: every accepted result, backlog included).`,
    doc: `Buckets 50 µs × 2^k, k = 0..18.${spec.histogramDoc ? ` ${spec.histogramDoc}` : ""}`,
  });
  const sentTotal = store.counter({ name: `prober_${k}_packets_sent_total`, type: "counter", labelNames: PAIR, help: `${T} ${request}s sent (cumulative: every accepted result, backlog included).` });
  const receivedTotal = store.counter({ name: `prober_${k}_packets_received_total`, type: "counter", labelNames: PAIR, help: `${T} ${reply.replace(/y$/, "ie")}s received (cumulative); loss over any range = 1 - increase(received) / increase(sent).` });
  const weightedSent = store.counter({
    name: `prober_${k}_weighted_packets_sent_total`, type: "counter", labelNames: PAIR,
    help: `${T} ${request}s sent, each round's counted times its sample_weight (cumulative).`,
    doc: "A regular round counts fully, an error-state re-probe by the share of the probe interval it samples, so 1 - increase(weighted received) / increase(weighted sent) is the time-weighted loss over any range, exact across servers (docs/aggregation.md).",
  });
  const weightedReceived = store.counter({
    name: `prober_${k}_weighted_packets_received_total`, type: "counter", labelNames: PAIR,
    help: `${T} ${reply.replace(/y$/, "ie")}s received, each round's counted times its sample_weight (cumulative).`,
  });
  const inferredGauge = store.gauge({
    name: `prober_${k}_pair_inferred`, type: "gauge", labelNames: PAIR,
    help: `1 while the pair's loss is inferred by the server, not reported: every agent of source_region is silent and every ${request} to them from target_region was lost (${spec.roundTrip}), so prober_${k}_packet_loss_rate reads 1.`,
    doc: "Present only while inferred (docs/aggregation.md \"A region cut off\"). The silent agents' own results arrive after reconnection, into the cumulative counters.",
  });
  const oneWay = spec.oneWay && {
    sent: store.counter({
      name: `prober_${k}_forward_packets_sent_total`, type: "counter", labelNames: PAIR,
      help: `${T} ${request}s sent within the spans the responder's reflector count covers (cumulative): the denominator of the loss towards the target.`,
      doc: "docs/probes.md \"One-way loss\". forward loss over a range = increase(_forward_packets_lost_total) / increase(_forward_packets_sent_total); the way back loses 1 - replies / (forward sent - forward lost) (each span closes with one reply). Zero from responders of 0.6.",
    }),
    lost: store.counter({
      name: `prober_${k}_forward_packets_lost_total`, type: "counter", labelNames: PAIR,
      help: `${T} ${request}s of those spans that never reached the responder (cumulative): loss on the way there, not back.`,
    }),
  };
  const flowHistory = new FlowHistory();
  const flowsLossy = spec.flows && store.gauge({
    name: `prober_${k}_flows_lossy`, type: "gauge", labelNames: PAIR,
    help: `(agent, target, flow) triples of the pair that are lossy: a flow (source port) that lost at least half of its ${request}s while the link's other flows together lost under 5% (lib/probes/flow/lossy.ts), each flow's counts summed over the newest windows that give every flow 2 probes (this window for udp).`,
    doc: "The ECMP / LAG signature (one bundle member or one of several equal-cost paths drops); /api/v1/pair lists the flows. 0 when every flow is fine or every flow loses alike.",
  });
  let latest: EchoAggregate[] = [];
  /** Pairs inferred in the last window (key source\0target). */
  let inferredNow = new Set<string>();

  return {
    latest: () => latest,

    publishInferred(pairs, windowEndMs) {
      // Inferred entries of an earlier call (a tick that published no window of this kind) are replaced.
      latest = latest.filter((a) => !a.inferred);
      const next = new Set<string>();
      const reported = new Set(latest.map((a) => `${a.sourceRegion}\u0000${a.targetRegion}`));
      for (const { sourceRegion, targetRegion } of pairs) {
        const key = `${sourceRegion}\u0000${targetRegion}`;
        if (reported.has(key)) continue;
        next.add(key);
        const l = { source_region: sourceRegion, target_region: targetRegion };
        loss.set(l, 1);
        inferredGauge.set(l, 1);
        latest.push({ sourceRegion, targetRegion, sent: 0, received: 0, lossRatio: 1, errorStateLinks: 0, failed: 0, windowEndMs, links: [], inferred: true });
      }
      for (const key of inferredNow) {
        if (next.has(key)) continue;
        const [source_region, target_region] = key.split("\u0000") as [string, string];
        inferredGauge.remove({ source_region, target_region });
        if (!reported.has(key)) loss.remove({ source_region, target_region });
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
      if (oneWay) {
        const o = spec.oneWay!(r);
        if (o.sent > 0) (oneWay.sent.inc(l, o.sent), oneWay.lost.inc(l, o.lost));
      }
      if (r.received === 0) return;
      histogram.addCounts(l, spec.bucketCounts(r), r.meanSeconds * r.received);
    },

    openWindow(): KindWindow<R> {
      /** Time-weighted loss: Σ w·lost and Σ w·sent, w = the share of a probe interval a round samples. */
      type Weighted = { lossW: number; w: number };
      type Link = { agentIp: string; address: string; sent: number; received: number; rtt: Moments; loss: Weighted; errorState: boolean; fwdSent: number; fwdLost: number };
      // Links by agent IP then address, and in arrival order (`links`): nested maps look a link up by
      // the strings a result holds, where a joined key string cost a concatenation, flattening and
      // hashing per result (measured: most of filing at 300,000 results an interval).
      type Pair = { agg: EchoAggregate; rtt: Moments; resolveSum: number; resolveN: number; perAgentTarget: Map<string, Map<string, Link>>; links: Link[]; flows: FlowWindow };
      const ratio = (x: Weighted) => (x.w > 0 ? x.lossW / x.w : 1);
      // By source region, then target region; `order` in arrival order (publishing).
      const pairs = new Map<string, Map<string, Pair>>();
      const order: Pair[] = [];
      return {
        add({ sourceRegion, agentIp, result: r }) {
          let bySource = pairs.get(sourceRegion);
          if (!bySource) pairs.set(sourceRegion, (bySource = new Map()));
          let p = bySource.get(r.targetRegion);
          if (!p) {
            p = {
              agg: { sourceRegion, targetRegion: r.targetRegion, sent: 0, received: 0, lossRatio: 1, errorStateLinks: 0, failed: 0, windowEndMs: 0, links: [] },
              rtt: new Moments(), resolveSum: 0, resolveN: 0, perAgentTarget: new Map(), links: [], flows: new FlowWindow(k),
            };
            bySource.set(r.targetRegion, p);
            order.push(p);
          }
          p.agg.sent += r.sent;
          p.agg.received += r.received;
          if (isEchoFailure(r)) p.agg.failed += sampleWeight(r);
          if (r.resolvedIp) {
            p.resolveSum += r.resolveSeconds;
            p.resolveN++;
          }
          if (spec.flows) p.flows.add(agentIp, r.address, spec.flows(r));
          let byAgent = p.perAgentTarget.get(agentIp);
          if (!byAgent) p.perAgentTarget.set(agentIp, (byAgent = new Map()));
          let link = byAgent.get(r.address);
          if (!link) {
            byAgent.set(r.address, (link = { agentIp, address: r.address, sent: 0, received: 0, rtt: new Moments(), loss: { lossW: 0, w: 0 }, errorState: false, fwdSent: 0, fwdLost: 0 }));
            p.links.push(link);
          }
          link.sent += r.sent;
          link.received += r.received;
          link.errorState ||= r.errorState;
          if (spec.oneWay) {
            const o = spec.oneWay(r);
            link.fwdSent += o.sent;
            link.fwdLost += o.lost;
          }
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

        *publish(windowEndMs): Steps {
          // Built aside and shown at the last step: a reader between steps sees the previous window whole.
          const next: EchoAggregate[] = [];
          for (const p of order) {
            const a = p.agg;
            a.windowEndMs = windowEndMs;
            a.links = p.links.map((x) => ({
              agentIp: x.agentIp, address: x.address, sent: x.sent, received: x.received, lossRatio: ratio(x.loss), errorState: x.errorState,
              ...(x.rtt.n > 0 ? { rttMean: x.rtt.mean, jitter: x.rtt.stddev } : {}),
              ...(x.fwdSent > 0 ? { forwardSent: x.fwdSent, forwardLost: x.fwdLost } : {}),
            }));
            const l = { source_region: a.sourceRegion, target_region: a.targetRegion };
            // The pair's weighted sums are its links' sums.
            const pairLoss: Weighted = { lossW: 0, w: 0 };
            for (const x of p.links) (pairLoss.lossW += x.loss.lossW), (pairLoss.w += x.loss.w);
            a.lossRatio = ratio(pairLoss);
            a.errorStateLinks = a.links.filter((x) => x.errorState).length;
            failed.set(l, a.failed);
            loss.set(l, a.lossRatio);
            errorLinks.set(l, a.errorStateLinks);
            if (flowsLossy) {
              a.flows = p.flows.rows(flowHistory, `${a.sourceRegion}\u0000${a.targetRegion}`, windowEndMs);
              a.flowsLossy = a.flows.filter((f) => f.lossy).length;
              flowsLossy.set(l, a.flowsLossy);
            }
            if (p.resolveN) duration.set({ ...l, phase: "resolve" }, (a.resolveMean = p.resolveSum / p.resolveN));
            else duration.remove({ ...l, phase: "resolve" });
            if (p.rtt.n > 0) {
              a.rttMean = p.rtt.mean;
              a.rttMin = p.rtt.min;
              a.rttMax = p.rtt.max;
              // Mean over the (agent, target) pairs that received something.
              let sum = 0, n = 0;
              for (const x of p.links) if (x.rtt.n > 0) (sum += x.rtt.stddev), n++;
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
            next.push(a);
            yield;
          }
          // Pairs inferred for an earlier window by publishInferred() go with it, as before.
          latest = next;
        },
      };
    },
  };
}
