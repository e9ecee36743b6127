/** TCP probe defaults (docs/kinds/tcp.md), next to the probe that applies them. */

/** Defaults of a `tcp:` module; durations in milliseconds. */
export const TCP_DEFAULTS = {
  /** Whole-probe deadline (blackbox_exporter takes the scrape's timeout; ProberMesh has no scrape). */
  timeoutMs: 10_000,
  /** ProberMesh's default, as for http; blackbox_exporter's is ip6. */
  preferredIpProtocol: "ip4",
  ipProtocolFallback: true,
} as const;

/**
 * Default -agent.tcp.flow.ports: the source ports of the connect probe's flows (TcpModule.flows),
 * one per flow (lib/probes/flow/ports.ts). Next to the udp kind's 40100-40115, 16 ports.
 */
export const TCP_FLOW_PORTS = "40200-40215";

/** Most flows a module may ask for (`flows`, probe file). */
export const TCP_MAX_FLOWS = 1024;
