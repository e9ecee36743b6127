/** ICMP probe defaults (docs/probes.md "ICMP"), next to the probe that applies them. */

/** Defaults of an `icmp:` module: 64 echoes, 15 ms apart, 64-byte payload, 5 s per-packet timeout. Durations in milliseconds. */
export const ICMP_DEFAULTS = { packetCount: 64, intervalMs: 15, payloadSize: 64, timeoutMs: 5000 } as const;
