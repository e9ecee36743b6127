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
  return poolBatch(sim.filter((t) => t.region !== sim[i]!.region), format, lost);
}

/**
 * One result per target in `targets` (e.g. the ICMP targets of the agent's pool: a region and an
 * address each), each losing `lost` of PACKETS echoes, in the 0.1 or 0.2 wire format. Results
 * carry no time: set it before each push.
 */
export function poolBatch(targets: readonly { region: string; ip: string }[], format: "0.1" | "0.2" = "0.2", lost = 0): IcmpResult[] {
  const rtts = Array.from({ length: PACKETS - lost }, (_, k) => 0.002 + (k % 7) * 1e-4);
  const s = Moments.of(rtts);
  const shape = {
    sent: PACKETS, received: rtts.length, durationSeconds: 1, minSeconds: s.min, meanSeconds: s.mean, maxSeconds: s.max, stddevSeconds: s.stddev,
    ...(format === "0.1" ? { rttsSeconds: rtts } : { rttBucketCounts: rttBucketCounts(rtts) }),
  };
  return targets.map((t) => create(IcmpResultSchema, { targetRegion: t.region, address: t.ip, resolvedIp: t.ip, ...shape }));
}

/** The index of a simulated agent in simAgents' numbering from its IP (`127.100.0.7` -> 7); -1 for any other address. */
export function simIndex(ip: string): number {
  const m = /^127\.(\d+)\.(\d+)\.(\d+)$/.exec(ip);
  if (!m || Number(m[1]) < 100 || Number(m[2]) > 255 || Number(m[3]) > 255) return -1;
  return ((Number(m[1]) - 100) << 16) | (Number(m[2]) << 8) | Number(m[3]);
}

/** simIndex() of the ASCII address in b[from, to) without making a string; -1 if it is no simulated agent's. */
function ipIndex(b: Uint8Array, from: number, to: number): number {
  const parts = [0, 0, 0, 0];
  let k = 0, digits = 0;
  for (let p = from; p < to; p++) {
    const c = b[p]!;
    if (c === 0x2e && digits > 0 && k < 3) (k++, digits = 0);
    else if (c >= 0x30 && c <= 0x39 && digits < 3) (parts[k] = parts[k]! * 10 + c - 0x30, digits++);
    else return -1;
  }
  const [a, x, y, z] = parts as [number, number, number, number];
  if (k !== 3 || digits === 0 || a !== 127 || x < 100 || y > 255 || z > 255) return -1;
  return ((x - 100) << 16) | (y << 8) | z;
}

/** What a simulated agent keeps of a GetTargetPool answer. */
export interface SimPool {
  /** simIndex() of each ICMP target, ascending (-1s of non-simulated addresses left out). */
  icmp: Int32Array;
  /** ICMP targets that are no simulated agent (file targets). */
  others: number;
  /** GetTargetPoolResponse.partial (the server's warm-up). */
  partial: boolean;
}

/**
 * Reads a GetTargetPoolResponse's wire bytes (protobuf, docs/protocol.md) for its ICMP targets'
 * addresses and `partial` only, without building a message object per target: a full mesh of
 * 5,000 agents is 25 M targets per round of fetches, which would measure the simulator instead
 * of the server. Checked against fromBinary by bench/mesh.ts on each configuration's first pool.
 */
export function readPool(b: Uint8Array): SimPool {
  let p = 0;
  const varint = (): number => {
    let v = 0, shift = 0, c: number;
    do {
      c = b[p++]!;
      v += (c & 0x7f) * 2 ** shift;
      shift += 7;
    } while (c & 0x80);
    return v;
  };
  const skip = (wire: number) => {
    if (wire === 0) varint();
    else if (wire === 1) p += 8;
    else if (wire === 2) {
      const len = varint(); // not `p += varint()`: that adds to p as it was before the varint
      p += len;
    }
    else if (wire === 5) p += 4;
    else throw new Error(`pool: wire type ${wire} at byte ${p}`);
  };
  const out: number[] = [];
  let others = 0, partial = false;
  while (p < b.length) {
    const tag = varint();
    if (tag === 0x0a) { // field 1: IcmpTarget
      const end = varint() + p;
      let index = -1;
      while (p < end) {
        const t = varint();
        if (t === 0x12) { // field 2: address
          const len = varint();
          index = ipIndex(b, p, p + len);
          p += len;
        } else skip(t & 7);
      }
      if (index >= 0) out.push(index);
      else others++;
    } else if (tag === 0x18) partial = varint() !== 0; // field 3: partial
    else skip(tag & 7);
  }
  return { icmp: Int32Array.from(out).sort(), others, partial };
}
