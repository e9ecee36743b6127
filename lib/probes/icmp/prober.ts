/**
 * ICMP probe type: resolve (names only), then one echo round on the shared IcmpEngine, summarised
 * into an IcmpResult (sent, received, per-packet RTTs, min/mean/max/stddev in seconds).
 */
import { create } from "@bufbuild/protobuf";
import { timestampNow, durationMs } from "@bufbuild/protobuf/wkt";
import { IcmpResultSchema, type IcmpResult, type IcmpTarget } from "../../rpc/gen/probermesh/v1/probermesh_pb.ts";
import { ICMP_DEFAULTS } from "../../targets/config.ts";
import { resolveHost } from "../resolve.ts";
import type { IcmpProber } from "../types.ts";
import { IcmpEngine } from "./engine.ts";

/** Summary statistics of RTT samples, seconds. stddev is the population standard deviation. */
export interface RttStats {
  min: number;
  mean: number;
  max: number;
  stddev: number;
}

/** min/mean/max/stddev of `samples` (seconds); all zero for no samples. */
export function rttStats(samples: readonly number[]): RttStats {
  if (samples.length === 0) return { min: 0, mean: 0, max: 0, stddev: 0 };
  let min = Infinity, max = -Infinity, sum = 0;
  for (const v of samples) {
    if (v < min) min = v;
    if (v > max) max = v;
    sum += v;
  }
  const mean = sum / samples.length;
  let sq = 0;
  for (const v of samples) sq += (v - mean) ** 2;
  return { min, mean, max, stddev: Math.sqrt(sq / samples.length) };
}

/** The ICMP prober; share one per agent (it owns the engine's sockets). */
export class IcmpEchoProber implements IcmpProber {
  readonly type = "icmp" as const;
  constructor(readonly engine: IcmpEngine = new IcmpEngine()) {}

  async probe(target: IcmpTarget): Promise<IcmpResult> {
    const m = target.module;
    const opts = {
      count: m?.packetCount || ICMP_DEFAULTS.packetCount,
      intervalMs: m?.interval ? durationMs(m.interval) : ICMP_DEFAULTS.intervalMs,
      payloadSize: m?.payloadSize || ICMP_DEFAULTS.payloadSize,
      timeoutMs: m?.timeout ? durationMs(m.timeout) : ICMP_DEFAULTS.timeoutMs,
    };
    const result = create(IcmpResultSchema, { targetRegion: target.targetRegion, address: target.address, time: timestampNow() });
    try {
      const r = await resolveHost(target.address);
      result.resolvedIp = r.ip;
      result.resolveSeconds = r.seconds;
    } catch (e) {
      result.error = `resolve: ${(e as Error).message}`;
      return result;
    }
    try {
      const o = await this.engine.echo(result.resolvedIp, opts);
      const s = rttStats(o.rttsSeconds);
      Object.assign(result, {
        sent: o.sent, received: o.received, duplicates: o.duplicates, corrupted: o.corrupted, rttsSeconds: o.rttsSeconds,
        minSeconds: s.min, meanSeconds: s.mean, maxSeconds: s.max, stddevSeconds: s.stddev, error: o.error,
      });
    } catch (e) {
      result.error = (e as Error).message;
    }
    return result;
  }

  close(): void {
    this.engine.close();
  }
}
