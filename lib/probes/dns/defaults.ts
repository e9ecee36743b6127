/** DNS probe defaults (docs/kinds/dns.md), next to the probe that applies them: blackbox_exporter's, except where noted. */

/** Defaults of a `dns:` module; durations in milliseconds. */
export const DNS_DEFAULTS = {
  /** Whole-probe deadline (blackbox's module timeout defaults to the scrape's, 10 s by default). */
  timeoutMs: 10_000,
  queryType: "ANY",
  queryClass: "IN",
  transportProtocol: "udp",
  recursionDesired: true,
  validRcodes: ["NOERROR"],
  /** blackbox_exporter defaults to ip6; ProberMesh's kinds all prefer ip4. */
  preferredIpProtocol: "ip4",
  ipProtocolFallback: true,
} as const;
