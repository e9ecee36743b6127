/**
 * The flow trace's agent half: traces one flow with the FlowTracer (trace.ts) and fills a
 * PathTrace message exactly as the ICMP path trace does (lib/probes/icmp/path.ts), plus kind,
 * source_port and destination_port (docs/probes.md "Path trace").
 */
import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { PathTraceSchema, type PathTrace } from "../../rpc/gen/probermesh/v1/probermesh_pb.ts";
import type { TraceReason } from "../icmp/path_check.ts";
import { runTrace } from "../trace_hops.ts";
import { FlowTracer, type FlowTraceOptions } from "./trace.ts";

/** Why a flow trace ran (PathTrace.reason, one of TRACE_REASONS): its flow turned lossy (lossy.ts), or its target entered error state. */
export type FlowTraceReason = TraceReason;

/** A flow to trace, as the agent knows it from its udp / tcp targets and results. */
export interface FlowTraceRequest {
  kind: "udp" | "tcp";
  targetRegion: string;
  /** The target as handed out in the pool (UdpTarget / TcpTarget.address, "ip:port"). */
  address: string;
  /** The IP the flow's probes go to ("" or a host name: resolved here). */
  ip: string;
  sourcePort: number;
  destinationPort: number;
  reason: FlowTraceReason;
  /** DSCP of the flow (0..63; default 0). */
  dscp?: number;
}

/** Traces flows into PathTrace messages; one per agent (it owns the tracer's ICMP socket). */
export class FlowTraceProber {
  constructor(private readonly opts: Partial<FlowTraceOptions> = {}, readonly tracer = new FlowTracer()) {}

  /** Whether flow traces can run here; for the agent's start-up log. */
  status(): { ready: boolean; message: string } {
    return this.tracer.status();
  }

  /** Traces `f`; never rejects (failures, including a trace of the same flow running, are in PathTrace.error). */
  async trace(f: FlowTraceRequest): Promise<PathTrace> {
    const startWall = Date.now();
    const start = performance.now();
    const out = create(PathTraceSchema, {
      targetRegion: f.targetRegion, address: f.address, time: timestampFromMs(startWall), reason: f.reason,
      kind: f.kind, sourcePort: f.sourcePort, destinationPort: f.destinationPort,
    });
    return runTrace(out, f.ip || f.address.replace(/:\d+$/, ""), start, (ip) => this.tracer.trace({ kind: f.kind, ip, sourcePort: f.sourcePort, destinationPort: f.destinationPort, dscp: f.dscp }, this.opts));
  }

  close(): void {
    this.tracer.close();
  }
}
