/**
 * Simulated agents for the benchmarks: identities in `regions` regions with distinct loopback-range
 * IPs (only strings: nothing is sent to them), and their full-mesh result batches.
 */
import { create } from "@bufbuild/protobuf";
import { Moments } from "../lib/aggregation/moments.ts";
import { rttBucketCounts } from "../lib/probes/icmp/buckets.ts";
import { IcmpResultSchema, type IcmpResult } from "../lib/rpc/gen/probermesh/v1/icmp_pb.ts";
import { AgentSchema, type Agent } from "../lib/rpc/gen/probermesh/v1/probermesh_pb.ts";

/** Echoes per simulated result. */
export const PACKETS = 64;

/** `n` agents spread over `regions` regions (agent i in region r(i mod regions)). */
export function simAgents(n: number, regions: number): Agent[] {
  return Array.from({ length: n }, (_, i) => create(AgentSchema, { region: `r${i % regions}`, ip: `127.${100 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`, version: "bench", hostname: "bench" }));
}

/**
 * One result per agent of every other region (a full dynamic mesh) for agent `i`, each losing
 * `lost` of PACKETS echoes, in the 0.1 (`rtts_seconds`) or 0.2 (`rtt_bucket_counts`) wire format.
 * Results carry no time: set it before each push.
 */
export function meshBatch(sim: Agent[], i: number, format: "0.1" | "0.2" = "0.2", lost = 0): IcmpResult[] {
  const rtts = Array.from({ length: PACKETS - lost }, (_, k) => 0.002 + (k % 7) * 1e-4);
  const s = Moments.of(rtts);
  return sim.filter((t) => t.region !== sim[i]!.region).map((t) => create(IcmpResultSchema, {
    targetRegion: t.region, address: t.ip, resolvedIp: t.ip, sent: PACKETS, received: rtts.length, durationSeconds: 1,
    minSeconds: s.min, meanSeconds: s.mean, maxSeconds: s.max, stddevSeconds: s.stddev,
    ...(format === "0.1" ? { rttsSeconds: rtts } : { rttBucketCounts: rttBucketCounts(rtts) }),
  }));
}
