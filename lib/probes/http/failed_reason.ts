/**
 * The HTTP probe's failed_reason values (label of prober_http_failed and
 * prober_http_probes_failed_total, HttpResult.failed_reason): defined here once. The prober's
 * type, the server's validation, docs/metrics.md and the tests all derive from this list.
 */

/** Every failed_reason with what it means; the order is the order of the checks. */
export const FAILED_REASON_DOCS = {
  resolve: "the host name did not resolve (NXDOMAIN, no address of the wanted family, resolver error), or the resolver did not answer before the module's timeout ran out",
  oauth2: "the OAuth2 token could not be fetched from oauth2.token_url (unreachable, not 2xx, no access_token in the answer); the target was not asked",
  connect: "the TCP connection (to the target, or to the proxy) was refused, reset or unreachable",
  proxy: "the proxy did not open a tunnel: CONNECT answered other than 200, or the SOCKS5 handshake failed",
  tls: "the TLS handshake failed (certificate not trusted, wrong name, protocol error)",
  timeout: "the module's timeout ran out after the name resolved; the phases completed before it are still reported",
  status_code: "the final status code is not in valid_status_codes (default 2xx)",
  http_version: "the final response's HTTP version is not in valid_http_versions",
  ssl: "fail_if_ssl and the final response came over TLS, or fail_if_not_ssl and it did not",
  header_regexp: "fail_if_header_matches matched, or fail_if_header_not_matches did not, or the header was missing (without allow_missing)",
  compression: "the body could not be decoded with the module's compression",
  body_size_limit: "the body (decoded) was larger than body_size_limit",
  body_too_large: "the module has body checks, body_size_limit is not set, and the body (decoded) was larger than the 1 MiB kept for them: nothing was checked on a cut body",
  body_regexp: "fail_if_body_matches_regexp matched, or fail_if_body_not_matches_regexp did not",
  body_cel: "fail_if_body_json_matches_cel gave true, fail_if_body_json_not_matches_cel gave false, the body is not JSON, or the expression did not give a boolean",
  http_protocol: "the response was not valid HTTP/1.x or HTTP/2, or the connection closed before it was complete",
  redirects: "more than 10 redirects",
} as const;

/** A failed_reason value. */
export type FailedReason = keyof typeof FAILED_REASON_DOCS;

/** Every failed_reason, in check order. */
export const FAILED_REASONS = Object.keys(FAILED_REASON_DOCS) as FailedReason[];

/** True when `s` is a failed_reason value. */
export function isFailedReason(s: string): s is FailedReason {
  return Object.hasOwn(FAILED_REASON_DOCS, s);
}
