/** HTTP probe defaults (docs/kinds/http.md), next to the probe that applies them. */

/** Defaults of an `http:` module; durations in milliseconds. */
export const HTTP_DEFAULTS = {
  /** Whole-probe deadline over every hop (blackbox_exporter's default is 10 s too). */
  timeoutMs: 10_000,
  method: "GET",
  /**
   * ProberMesh's documented default since 0.1; blackbox_exporter prefers ip6. Kept: agents run in
   * regions without IPv6 routes, where preferring ip6 would fail dual-stack targets at connect.
   */
  preferredIpProtocol: "ip4",
  ipProtocolFallback: true,
  /** blackbox_exporter's follow_redirects default. */
  followRedirects: true,
  /** blackbox_exporter's (Prometheus common config's) enable_http2 default. */
  enableHttp2: true,
} as const;

/**
 * Body bytes kept for fail_if_body_* regexps and CEL when body_size_limit is not set (1 MiB).
 * blackbox_exporter reads the whole body; an agent probing many targets at once bounds what it
 * holds. A body longer than this with body checks fails with failed_reason body_too_large (never
 * checked on a silently cut body); body_size_limit, when set, is the bound instead.
 */
export const BODY_CHECK_DEFAULT_BYTES = 1 << 20;

/** Redirect hops followed at most (Go's http.Client and blackbox_exporter: 10). */
export const MAX_REDIRECTS = 10;

/** Interim (1xx) responses skipped at most before the final one (Go's net/http: 5). */
export const MAX_INTERIM_RESPONSES = 5;
