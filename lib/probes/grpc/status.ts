/**
 * gRPC status codes (https://grpc.github.io/grpc/core/md_doc_statuscodes.html) and the codes a
 * client reports for calls that got no grpc-status from the server (gRPC's
 * doc/http-grpc-status-mapping.md), as blackbox_exporter's probe_grpc_status_code shows them.
 */

/** Status code names by number, 0 OK .. 16 UNAUTHENTICATED. */
export const GRPC_CODE_NAMES = [
  "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED",
  "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED",
] as const;

/** The codes the prober itself reports. */
export const Code = { OK: 0, CANCELLED: 1, UNKNOWN: 2, DEADLINE_EXCEEDED: 4, NOT_FOUND: 5, UNIMPLEMENTED: 12, INTERNAL: 13, UNAVAILABLE: 14 } as const;

/** Highest defined status code. */
export const MAX_GRPC_CODE = GRPC_CODE_NAMES.length - 1;

/** "5 NOT_FOUND"; a code outside 0..16 is shown as a bare number. */
export const codeText = (code: number): string => `${code}${GRPC_CODE_NAMES[code] ? ` ${GRPC_CODE_NAMES[code]}` : ""}`;

/**
 * The status a gRPC client reports for an HTTP response without grpc-status (gRPC's
 * doc/http-grpc-status-mapping.md): 400 INTERNAL, 401 UNAUTHENTICATED, 403 PERMISSION_DENIED,
 * 404 UNIMPLEMENTED, 429/502/503/504 UNAVAILABLE, anything else UNKNOWN.
 */
export function codeOfHttpStatus(status: number): number {
  switch (status) {
    case 400: return 13;
    case 401: return 16;
    case 403: return 7;
    case 404: return 12;
    case 429: case 502: case 503: case 504: return 14;
    default: return 2;
  }
}

/**
 * Parses a grpc-status header value: a decimal code. A value outside 0..16 or not a number reads as
 * UNKNOWN, as gRPC clients treat it.
 */
export function parseGrpcStatus(v: string): number {
  if (!/^\d{1,3}$/.test(v.trim())) return Code.UNKNOWN;
  const n = Number(v.trim());
  return n <= MAX_GRPC_CODE ? n : Code.UNKNOWN;
}

/** Decodes a grpc-message header (percent-encoded UTF-8, gRPC PROTOCOL-HTTP2.md); undecodable text is kept as sent. */
export function decodeGrpcMessage(v: string | undefined): string {
  if (!v) return "";
  try {
    return decodeURIComponent(v);
  } catch {
    return v;
  }
}
