/** How a gRPC probe fails: a failed_reason, a message, and the status code a gRPC client would report. */
import type { FailedReason } from "./failed_reason.ts";

/** A probe failure; `code` is GrpcResult.grpc_status_code (lib/probes/grpc/status.ts). */
export class ProbeFailure extends Error {
  override name = "ProbeFailure";
  /**
   * @param reason the result's failed_reason
   * @param message the result's error
   * @param code gRPC status code reported with it (0 when the call never started, e.g. resolve)
   */
  constructor(readonly reason: FailedReason, message: string, readonly code = 0) {
    super(message);
  }
}
