/**
 * Per-window aggregation (SPEC.md "Aggregation"). Pure functions: results in, aggregates out.
 *
 * ICMP: all agents of a source region and all targets of a target region fold into one bucket.
 * HTTP: one bucket per (source_region, target_region, target_addr). All times in seconds.
 */
import type { HttpResult, IcmpResult } from "../rpc/gen/probermesh/v1/probermesh_pb.ts";
import { rttStats } from "../probes/icmp/prober.ts";

/** A result as received: who sent it and what it says. */
export interface Received<R> {
  sourceRegion: string;
  agentIp: string;
  result: R;
}

/** One ICMP region pair over one window. */
export interface IcmpAggregate {
  sourceRegion: string;
  targetRegion: string;
  sent: number;
  received: number;
  /** Σ lost / Σ sent, a ratio 0..1 (ProberMesh published 0..100). */
  lossRatio: number;
  /** Mean RTT over all received packets; undefined when none was received. */
  rttMean?: number;
  rttMin?: number;
  rttMax?: number;
  /** Mean of the per-(agent, target) RTT standard deviations. */
  jitter?: number;
  /** Mean resolve time over results that resolved. */
  resolveMean?: number;
  /** Failed results: resolve error, no socket, or 100 % loss. */
  failed: number;
  /** Every received packet's RTT, for the histogram. */
  rtts: number[];
}

/** One HTTP (source, target region, URL) over one window. */
export interface HttpAggregate {
  sourceRegion: string;
  targetRegion: string;
  targetAddr: string;
  results: number;
  /** Means over successful results; undefined when none succeeded. */
  phases?: { resolve: number; connect: number; tls: number; processing: number; transfer: number };
  /** Status code of the latest result (0 when no response). */
  statusCode: number;
  /** Earliest certificate expiry seen, unix seconds; 0 when none. */
  certExpiry: number;
  /** Failed results by failed_reason. */
  failedByReason: Map<string, number>;
}

function isIcmpFailure(r: IcmpResult): boolean {
  return r.error.startsWith("resolve") || r.sent === 0 || r.received === 0;
}

/** Aggregates ICMP results by (source_region, target_region). */
export function aggregateIcmp(batch: readonly Received<IcmpResult>[]): IcmpAggregate[] {
  const groups = new Map<string, Received<IcmpResult>[]>();
  for (const x of batch) {
    const k = `${x.sourceRegion}\u0000${x.result.targetRegion}`;
    let g = groups.get(k);
    if (!g) groups.set(k, (g = []));
    g.push(x);
  }
  const out: IcmpAggregate[] = [];
  for (const g of groups.values()) {
    let sent = 0, received = 0, failed = 0, resolveSum = 0, resolveN = 0;
    const rtts: number[] = [];
    const perAgentTarget = new Map<string, number[]>();
    for (const { agentIp, result: r } of g) {
      sent += r.sent;
      received += r.received;
      if (isIcmpFailure(r)) failed++;
      if (r.resolvedIp) {
        resolveSum += r.resolveSeconds;
        resolveN++;
      }
      if (r.rttsSeconds.length === 0) continue;
      rtts.push(...r.rttsSeconds);
      const k = `${agentIp}\u0000${r.address}`;
      const list = perAgentTarget.get(k);
      if (list) list.push(...r.rttsSeconds);
      else perAgentTarget.set(k, [...r.rttsSeconds]);
    }
    const first = g[0]!;
    const agg: IcmpAggregate = {
      sourceRegion: first.sourceRegion, targetRegion: first.result.targetRegion, sent, received,
      lossRatio: sent > 0 ? (sent - received) / sent : 1, failed, rtts,
      resolveMean: resolveN ? resolveSum / resolveN : undefined,
    };
    if (rtts.length) {
      const s = rttStats(rtts);
      agg.rttMean = s.mean;
      agg.rttMin = s.min;
      agg.rttMax = s.max;
      let jitterSum = 0;
      for (const list of perAgentTarget.values()) jitterSum += rttStats(list).stddev;
      agg.jitter = jitterSum / perAgentTarget.size;
    }
    out.push(agg);
  }
  return out;
}

/** Aggregates HTTP results by (source_region, target_region, target_addr). */
export function aggregateHttp(batch: readonly Received<HttpResult>[]): HttpAggregate[] {
  const groups = new Map<string, HttpAggregate & { sums: number[]; ok: number }>();
  for (const { sourceRegion, result: r } of batch) {
    const k = `${sourceRegion}\u0000${r.targetRegion}\u0000${r.url}`;
    let g = groups.get(k);
    if (!g) {
      g = { sourceRegion, targetRegion: r.targetRegion, targetAddr: r.url, results: 0, statusCode: 0, certExpiry: 0, failedByReason: new Map(), sums: [0, 0, 0, 0, 0], ok: 0 };
      groups.set(k, g);
    }
    g.results++;
    g.statusCode = r.statusCode;
    const exp = Number(r.sslEarliestCertExpiry);
    if (exp > 0 && (g.certExpiry === 0 || exp < g.certExpiry)) g.certExpiry = exp;
    if (r.success) {
      g.ok++;
      [r.resolveSeconds, r.connectSeconds, r.tlsSeconds, r.processingSeconds, r.transferSeconds].forEach((v, i) => (g.sums[i]! += v));
    } else {
      const reason = r.failedReason || "unknown";
      g.failedByReason.set(reason, (g.failedByReason.get(reason) ?? 0) + 1);
    }
  }
  return [...groups.values()].map(({ sums, ok, ...agg }) => {
    if (ok > 0) {
      const [resolve, connect, tls, processing, transfer] = sums.map((s) => s / ok) as [number, number, number, number, number];
      agg.phases = { resolve, connect, tls, processing, transfer };
    }
    return agg;
  });
}
