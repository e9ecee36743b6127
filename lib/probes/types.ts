/**
 * The one small interface every probe type implements (compare blackbox_exporter's ProbeFn and
 * Cloudprober's probes/<type>). Targets and results are the protobuf messages of
 * proto/probermesh/v1, so what an agent measures is exactly what it pushes.
 */
import type { HttpResult, HttpTarget, IcmpResult, IcmpTarget } from "../rpc/gen/probermesh/v1/probermesh_pb.ts";

/** Probe types of SPEC.md, used as the prober_type label. */
export type ProberType = "icmp" | "http";

/** A probe implementation for one target type. */
export interface Prober<Target, Result> {
  readonly type: ProberType;
  /**
   * Runs one round against one target. Never rejects for network failures: those are reported
   * in the result (error / failed_reason). `signal` aborts a round early (agent shutdown).
   */
  probe(target: Target, signal?: AbortSignal): Promise<Result>;
  /** Releases sockets. */
  close(): void;
}

export type IcmpProber = Prober<IcmpTarget, IcmpResult>;
export type HttpProber = Prober<HttpTarget, HttpResult>;

/** Seconds elapsed since `startMs` (a performance.now() value). */
export function secondsSince(startMs: number): number {
  return (performance.now() - startMs) / 1000;
}
