/**
 * The gRPC probe's failed_reason values (label of prober_grpc_failed and prober_grpc_probes_failed_total,
 * GrpcResult.failed_reason): defined here once. The prober's type, the server's validation
 * (lib/probes/phased_ingest.ts), docs/kinds/grpc.md and the tests derive from this list.
 *
 * blackbox_exporter's grpc prober reports only success and probe_grpc_status_code; these reasons
 * split its failures by where they happened (phases resolve, connect, tls, check).
 */

/** Every failed_reason with what it means; the order is the order of the checks. */
export const FAILED_REASON_DOCS = {
  resolve: "the host name did not resolve (NXDOMAIN, no address of the wanted family, resolver error), or the resolver did not answer before the module's timeout ran out",
  connect: "the TCP connection was refused, reset or unreachable",
  tls: "the TLS handshake failed (certificate not trusted, wrong name, client certificate refused, protocol error)",
  timeout: "the module's timeout ran out (or the probe was aborted) after the name resolved; the phases completed before it are still reported",
  protocol: "the server did not speak gRPC over HTTP/2: TLS without ALPN h2, an HTTP/2 session or stream error, a response that is not gRPC (HTTP status not 200, content-type not application/grpc, no grpc-status), or a malformed or missing response message",
  grpc_status: "the call ended with a grpc-status other than 0 OK (grpc_status_code): e.g. 12 UNIMPLEMENTED when the server has no health service, 5 NOT_FOUND for an unknown service",
  not_serving: "the call succeeded but the health status is not SERVING (serving_status: NOT_SERVING, UNKNOWN, SERVICE_UNKNOWN)",
} as const;

/** A failed_reason value. */
export type FailedReason = keyof typeof FAILED_REASON_DOCS;

/** Every failed_reason, in check order. */
export const FAILED_REASONS = Object.keys(FAILED_REASON_DOCS) as FailedReason[];
