/**
 * The gRPC kind's server half (lib/probes/kind.ts): the shared check-kind ingest
 * (lib/probes/phased_ingest.ts) with the gRPC phases, failed reasons and status-code gauge.
 * Metrics: prober_grpc_probes_total, prober_grpc_probes_failed_total, prober_grpc_failed,
 * prober_grpc_duration_seconds, prober_grpc_status_code, prober_grpc_ssl_earliest_cert_expiry.
 */
import type { SeriesStore } from "../../metrics/series.ts";
import type { GrpcResult } from "../../rpc/gen/probermesh/v1/grpc_pb.ts";
import { checkPhasedResult, phasedIngest, type PhasedSpec } from "../phased_ingest.ts";
import { FAILED_REASON_DOCS } from "./failed_reason.ts";
import { MAX_GRPC_CODE } from "./status.ts";

/** The `phase` label's values of prober_grpc_duration_seconds, in order (blackbox's resolve and check, with connect and tls split out of check). */
export const GRPC_PHASES = ["resolve", "connect", "tls", "check"] as const;

/** HealthCheckResponse.ServingStatus names a result may carry (grpc.health.v1); "" = no response message. */
export const SERVING_STATUSES = ["", "UNKNOWN", "SERVING", "NOT_SERVING", "SERVICE_UNKNOWN"] as const;

/** Kind-specific checks of a pushed gRPC result. @returns "" or why it is unusable */
function checkGrpcFields(r: GrpcResult): string {
  if (r.grpcStatusCode > MAX_GRPC_CODE) return "grpc_status_code out of range";
  // A value outside the enum arrives as its number, as Go's String() of an unknown enum value.
  if (!(SERVING_STATUSES as readonly string[]).includes(r.servingStatus) && !/^\d{1,10}$/.test(r.servingStatus)) return "unknown serving_status";
  if (r.success && (r.grpcStatusCode !== 0 || r.servingStatus !== "SERVING")) return "success without grpc-status 0 and SERVING";
  return "";
}

/** gRPC as a check kind. */
export const GRPC_SPEC: PhasedSpec<GrpcResult, (typeof GRPC_PHASES)[number]> = {
  kind: "grpc",
  title: "gRPC",
  phases: GRPC_PHASES,
  phaseSeconds: (r) => [r.resolveSeconds, r.connectSeconds, r.tlsSeconds, r.checkSeconds],
  address: (r) => r.address,
  failedReasons: FAILED_REASON_DOCS,
  tls: true,
  latestValue: {
    name: "prober_grpc_status_code",
    help: "gRPC status code of the latest result of the last published window (blackbox's probe_grpc_status_code: the server's grpc-status, else the code a gRPC client reports: 14 UNAVAILABLE for connection, TLS or HTTP/2 failures, 4 DEADLINE_EXCEEDED for timeouts; 0 after a resolve failure).",
    of: (r) => r.grpcStatusCode,
  },
  check: checkGrpcFields,
};

/** Checks the numbers of a gRPC result (assignment is checked by the caller). @returns "" or why it is unusable */
export const checkGrpcResult = (r: GrpcResult): string => checkPhasedResult(GRPC_SPEC, r);

/** The gRPC metrics on `store` and the ingest that feeds them. */
export const grpcIngest = (store: SeriesStore) => phasedIngest(GRPC_SPEC, store);
