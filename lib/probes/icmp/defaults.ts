/** ICMP probe defaults (docs/probes.md "ICMP", docs/kinds/icmp.md), next to the probe that applies them. */

/**
 * Defaults of an `icmp:` module: 64 echoes, 15 ms apart, 64-byte payload, 5 s per-packet timeout
 * (durations in milliseconds); names resolved IPv4 first with fallback (blackbox_exporter: ip6
 * first); ttl 0 = the system's TTL; no DF bit; source chosen by the kernel.
 */
export const ICMP_DEFAULTS = {
  packetCount: 64, intervalMs: 15, payloadSize: 64, timeoutMs: 5000,
  preferredIpProtocol: "ip4", ipProtocolFallback: true, ttl: 0, dontFragment: false,
} as const;

/** The largest payload_size: an IPv4 packet of 65,535 bytes minus the 20-byte IP and 8-byte ICMP headers. */
export const MAX_PAYLOAD_SIZE = 65_507;
/** The smallest payload_size other than 0 (= the default): the agent's 8-byte token starts every payload. */
export const MIN_PAYLOAD_SIZE = 8;
