/** HTTP probe defaults (docs/probes.md "HTTP"), next to the probe that applies them. */

/** Defaults of an `http:` module; durations in milliseconds. */
export const HTTP_DEFAULTS = {
  /** Whole-probe deadline over every hop (blackbox_exporter's default is 10 s too). */
  timeoutMs: 10_000,
  method: "GET",
  preferredIpProtocol: "ip4",
  ipProtocolFallback: true,
} as const;
