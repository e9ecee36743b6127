/**
 * The server's Prometheus metrics (SPEC.md "Metrics"; names kept from ProberMesh) on a private
 * prom-client Registry, plus series expiry: a label set not updated for ratio x interval is
 * deleted (ProberMesh never deleted loss/jitter series; we do).
 */
import { Counter, Gauge, Histogram, Registry, type LabelValues } from "prom-client";
import type { HttpAggregate, IcmpAggregate } from "../aggregation/aggregate.ts";
import type { AgentEntry } from "../server/registry.ts";

/** prober_icmp_duration_seconds_total buckets: 5e-05 x 2^k seconds, k = 0..18 (50 µs .. 13.1 s). */
export const ICMP_HISTOGRAM_BUCKETS = Array.from({ length: 19 }, (_, k) => 5e-5 * 2 ** k);

type Metric = Gauge<string> | Histogram<string>;

/** All server metrics and their expiry bookkeeping. */
export class ServerMetrics {
  readonly registry = new Registry();
  readonly icmpFailed = new Gauge({ name: "prober_icmp_failed", help: "ICMP results that failed (resolve error or 100% loss) in the last aggregation window.", labelNames: ["source_region", "target_region"], registers: [this.registry] });
  readonly icmpDuration = new Gauge({ name: "prober_icmp_duration_seconds", help: "ICMP phase durations in seconds: resolve (mean), rtt (mean over received packets), min, max.", labelNames: ["source_region", "target_region", "phase"], registers: [this.registry] });
  readonly icmpLoss = new Gauge({ name: "prober_icmp_packet_loss_rate", help: "ICMP packet loss ratio 0..1 (lost / sent) in the last aggregation window.", labelNames: ["source_region", "target_region"], registers: [this.registry] });
  readonly icmpJitter = new Gauge({ name: "prober_icmp_jitter_stddev_seconds", help: "Mean of per-(agent, target) RTT standard deviations in seconds.", labelNames: ["source_region", "target_region"], registers: [this.registry] });
  readonly icmpHistogram = new Histogram({ name: "prober_icmp_duration_seconds_total", help: "RTT of every received ICMP echo reply, seconds.", labelNames: ["source_region", "target_region"], buckets: ICMP_HISTOGRAM_BUCKETS, registers: [this.registry] });
  readonly httpFailed = new Gauge({ name: "prober_http_failed", help: "HTTP results that failed in the last aggregation window, by failed_reason.", labelNames: ["source_region", "target_region", "target_addr", "failed_reason"], registers: [this.registry] });
  readonly httpDuration = new Gauge({ name: "prober_http_duration_seconds", help: "HTTP phase durations in seconds (mean over successful results): resolve, connect, tls, processing, transfer.", labelNames: ["source_region", "target_region", "target_addr", "phase"], registers: [this.registry] });
  readonly httpStatus = new Gauge({ name: "prober_http_status_code", help: "HTTP status code of the latest result (0 when no response).", labelNames: ["source_region", "target_region", "target_addr"], registers: [this.registry] });
  readonly httpCertExpiry = new Gauge({ name: "prober_http_ssl_earliest_cert_expiry", help: "Earliest TLS certificate NotAfter in the peer chain, unix seconds.", labelNames: ["source_region", "target_region", "target_addr"], registers: [this.registry] });
  readonly agentAlive = new Gauge({ name: "prober_agent_is_alive", help: "1 while the agent heartbeats, 0 once silent for ratio x aggregation interval.", labelNames: ["region", "ip", "version"], registers: [this.registry] });
  readonly receivePoints = new Counter({ name: "prober_server_receive_points_total", help: "Probe results accepted by the server.", labelNames: ["prober_type"], registers: [this.registry] });
  readonly rejectPoints = new Counter({ name: "prober_server_reject_points_total", help: "Probe results rejected by the server (target not assigned, invalid values).", labelNames: ["prober_type", "reason"], registers: [this.registry] });

  /** Last update (ms) per metric and label set, for expiry. */
  private readonly touched = new Map<Metric, Map<string, { labels: LabelValues<string>; at: number }>>();
  /** failed_reason values published per HTTP target (JSON of its labels), so publishHttp is O(targets). */
  private readonly failedReasons = new Map<string, Set<string>>();

  /** @param expireAfterMs ratio x aggregation interval, milliseconds */
  constructor(private readonly expireAfterMs: number, private readonly now = () => Date.now()) {
    for (const t of ["icmp", "http"]) this.receivePoints.inc({ prober_type: t }, 0);
  }

  private touch(m: Metric, labels: LabelValues<string>): void {
    let map = this.touched.get(m);
    if (!map) this.touched.set(m, (map = new Map()));
    map.set(JSON.stringify(labels), { labels, at: this.now() });
  }

  private set(g: Gauge<string>, labels: LabelValues<string>, v: number): void {
    g.set(labels, v);
    this.touch(g, labels);
  }

  /** Publishes one window's ICMP aggregates. */
  publishIcmp(aggs: readonly IcmpAggregate[]): void {
    for (const a of aggs) {
      const l = { source_region: a.sourceRegion, target_region: a.targetRegion };
      this.set(this.icmpFailed, l, a.failed);
      this.set(this.icmpLoss, l, a.lossRatio);
      if (a.resolveMean !== undefined) this.set(this.icmpDuration, { ...l, phase: "resolve" }, a.resolveMean);
      if (a.rttMean !== undefined) {
        this.set(this.icmpDuration, { ...l, phase: "rtt" }, a.rttMean);
        this.set(this.icmpDuration, { ...l, phase: "min" }, a.rttMin!);
        this.set(this.icmpDuration, { ...l, phase: "max" }, a.rttMax!);
        this.set(this.icmpJitter, l, a.jitter!);
      }
      for (const v of a.rtts) this.icmpHistogram.observe(l, v);
      this.touch(this.icmpHistogram, l);
    }
  }

  /** Publishes one window's HTTP aggregates. Reasons seen before and absent now drop to 0. */
  publishHttp(aggs: readonly HttpAggregate[]): void {
    for (const a of aggs) {
      const l = { source_region: a.sourceRegion, target_region: a.targetRegion, target_addr: a.targetAddr };
      // Reasons seen before for this target and absent now go to 0 (while their series lives).
      const key = JSON.stringify(l);
      let reasons = this.failedReasons.get(key);
      if (!reasons) this.failedReasons.set(key, (reasons = new Set()));
      const live = this.touched.get(this.httpFailed);
      for (const reason of reasons) {
        const labels = { ...l, failed_reason: reason };
        if (!a.failedByReason.has(reason) && live?.has(JSON.stringify(labels))) this.set(this.httpFailed, labels, 0);
      }
      for (const [reason, n] of a.failedByReason) {
        reasons.add(reason);
        this.set(this.httpFailed, { ...l, failed_reason: reason }, n);
      }
      this.set(this.httpStatus, l, a.statusCode);
      if (a.certExpiry > 0) this.set(this.httpCertExpiry, l, a.certExpiry);
      if (a.phases) for (const [phase, v] of Object.entries(a.phases)) this.set(this.httpDuration, { ...l, phase }, v);
    }
  }

  /** Deletes every series not updated for the expiry time. */
  expire(): void {
    const cutoff = this.now() - this.expireAfterMs;
    for (const [metric, map] of this.touched) {
      for (const [k, { labels, at }] of map) {
        if (at < cutoff) {
          metric.remove(labels);
          map.delete(k);
        }
      }
    }
  }

  /** Reflects an agent's state in prober_agent_is_alive (removing the label set of an old version). */
  agentChanged(e: AgentEntry, previous?: AgentEntry): void {
    if (previous) this.agentAlive.remove({ region: previous.region, ip: previous.ip, version: previous.version });
    this.agentAlive.set({ region: e.region, ip: e.ip, version: e.version }, e.alive ? 1 : 0);
  }

  /** Removes a forgotten agent's series. */
  agentForgotten(e: AgentEntry): void {
    this.agentAlive.remove({ region: e.region, ip: e.ip, version: e.version });
  }
}
