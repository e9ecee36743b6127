/**
 * The UDP responder's limits (responder.ts), apart from it so that the flags (docs/flags.md) can
 * name them without loading its sockets.
 */

/**
 * Default of -agent.udp.responder.max.rate, replies per second in all: 500 agents probing this one
 * with the default module (64 probes per 15 s round) send ~2,100 a second; error-state re-probing
 * (a round a second per target) adds up to 64 per prober and second, so 20,000 covers ~300 probers
 * re-probing at once. A reply costs one HMAC and one sendto().
 */
export const RESPONDER_MAX_RATE = 20_000;
/** Replies per second to one source IP at most (a prober re-probing sends 64 a second per target). */
export const RESPONDER_PER_SOURCE_RATE = 2000;
/** Source IPs whose buckets are kept; beyond, the least recently seen is forgotten. */
export const RESPONDER_MAX_SOURCES = 4096;
