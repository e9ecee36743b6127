/**
 * The gRPC kind's agent half. STUB: the grpc kind's owner replaces this file.
 */
import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { GrpcResultSchema, type GrpcResult, type GrpcTarget } from "../../rpc/gen/probermesh/v1/grpc_pb.ts";
import type { Prober, ProberStatus } from "../kind.ts";

/** Runs gRPC probes. */
export class GrpcProber implements Prober<"grpc"> {
  readonly type = "grpc" as const;

  status(): ProberStatus {
    return { ready: false, message: "gRPC probes are not implemented yet" };
  }

  async probe(target: GrpcTarget): Promise<GrpcResult> {
    return create(GrpcResultSchema, { targetRegion: target.targetRegion, address: target.address, time: timestampFromMs(Date.now()), failedReason: "connect", error: "not implemented" });
  }

  close(): void {}
}
