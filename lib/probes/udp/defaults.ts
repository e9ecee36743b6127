/** UDP probe defaults (docs/probes.md "UDP"), next to the kind that applies them. */

/**
 * Defaults of a `udp:` module: 64 probes spread round-robin over 16 flows, 15 ms apart, 64-byte
 * payloads (the 56-byte header of lib/probes/udp/packet.ts and padding), 5 s per-probe timeout
 * (durations in milliseconds); DSCP 0 (best effort); names resolved IPv4 first with fallback, as
 * the icmp kind.
 */
export const UDP_DEFAULTS = {
  packetCount: 64, intervalMs: 15, payloadSize: 64, timeoutMs: 5000, flows: 16, dscp: 0,
  preferredIpProtocol: "ip4", ipProtocolFallback: true,
} as const;

/** Most flows a `udp:` module may ask for (and UdpResult.flows may hold). */
export const UDP_MAX_FLOWS = 1024;

/** Most probes per round (packet_count), as the icmp kind. */
export const UDP_MAX_PACKETS = 10_000;

/** Largest DSCP (RFC 2474: 6 bits). */
export const MAX_DSCP = 63;

/**
 * Default -agent.udp.flow.ports: the source ports of the udp kind's flows, one per flow
 * (lib/probes/flow/ports.ts); 16 ports, UDP_DEFAULTS.flows. Next to the tcp kind's 40200-40215.
 */
export const UDP_FLOW_PORTS = "40100-40115";

