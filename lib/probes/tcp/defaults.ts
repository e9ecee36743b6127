/** TCP probe defaults (docs/kinds/tcp.md), next to the probe that applies them. */

/** Defaults of a `tcp:` module; durations in milliseconds. */
export const TCP_DEFAULTS = {
  /** Whole-probe deadline (blackbox_exporter takes the scrape's timeout; ProberMesh has no scrape). */
  timeoutMs: 10_000,
  /** ProberMesh's default, as for http; blackbox_exporter's is ip6. */
  preferredIpProtocol: "ip4",
  ipProtocolFallback: true,
} as const;
