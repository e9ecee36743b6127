/**
 * The path trace's agent half: traces one ICMP target with the PathTracer (trace.ts) and
 * summarises it into a PathTrace message (docs/probes.md "Path trace"): per TTL the answering
 * address, sent, received and RTT statistics in seconds.
 */
import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { type IcmpTarget } from "../../rpc/gen/probermesh/v1/icmp_pb.ts";
import { PathTraceSchema, type PathTrace } from "../../rpc/gen/probermesh/v1/probermesh_pb.ts";
import { runTrace } from "../trace_hops.ts";
import type { TraceReason } from "./path_check.ts";
import { PathTracer, type TraceOptions } from "./trace.ts";


/** Traces targets into PathTrace messages; one per agent (it owns the tracer's sockets). */
export class PathTraceProber {
  constructor(private readonly opts: Partial<TraceOptions> = {}, readonly tracer = new PathTracer()) {}

  /** Whether IPv4 traces can run here, and through which socket; for the agent's start-up log. */
  status(): { ready: boolean; message: string } {
    const d = this.tracer.describe(false);
    return "error" in d
      ? { ready: false, message: `path traces disabled: ${d.error}` }
      : { ready: true, message: `path traces through ${d.kind === "ping" ? "a ping socket (IP_RECVERR)" : "a raw socket"}` };
  }

  /** Traces `target`; never rejects (failures are in PathTrace.error). */
  async trace(target: IcmpTarget, reason: TraceReason): Promise<PathTrace> {
    const startWall = Date.now();
    const start = performance.now();
    const out = create(PathTraceSchema, { targetRegion: target.targetRegion, address: target.address, time: timestampFromMs(startWall), reason });
    return runTrace(out, target.address, start, (ip) => this.tracer.trace(ip, this.opts));
  }

  close(): void {
    this.tracer.close();
  }
}
