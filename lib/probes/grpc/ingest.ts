/**
 * The gRPC kind"s server half (lib/probes/kind.ts): the shared check-kind ingest
 * (lib/probes/phased_ingest.ts) with the gRPC phases and failed reasons.
 */
import type { SeriesStore } from "../../metrics/series.ts";
import type { GrpcResult } from "../../rpc/gen/probermesh/v1/grpc_pb.ts";
import { checkPhasedResult, phasedIngest, type PhasedSpec } from "../phased_ingest.ts";
import { FAILED_REASON_DOCS } from "./failed_reason.ts";

/** The `phase` label's values of prober_grpc_duration_seconds, in order. */
export const GRPC_PHASES = ["resolve", "connect", "tls", "check"] as const;

/** gRPC as a check kind. */
export const GRPC_SPEC: PhasedSpec<GrpcResult, (typeof GRPC_PHASES)[number]> = {
  kind: "grpc",
  title: "gRPC",
  phases: GRPC_PHASES,
  phaseSeconds: (r) => [r.resolveSeconds, r.connectSeconds, r.tlsSeconds, r.checkSeconds],
  address: (r) => r.address,
  failedReasons: FAILED_REASON_DOCS,
  tls: true,
};

/** Checks the numbers of a gRPC result (assignment is checked by the caller). @returns "" or why it is unusable */
export const checkGrpcResult = (r: GrpcResult): string => checkPhasedResult(GRPC_SPEC, r);

/** The gRPC metrics on `store` and the ingest that feeds them. */
export const grpcIngest = (store: SeriesStore) => phasedIngest(GRPC_SPEC, store);
