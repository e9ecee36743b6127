/** Heartbeat timing shared by server and agent (docs/protocol.md "RPCs"). */

/** Default heartbeat period (docs/protocol.md: every 10 s), milliseconds. */
export const HEARTBEAT_INTERVAL_MS = 10_000;

/**
 * Heartbeat period the server asks for: 10 s, or a third of the dead-after time (ratio x
 * aggregation interval) when that is shorter, so a live agent is never declared dead. Milliseconds.
 */
export function heartbeatIntervalMs(deadAfterMs: number): number {
  return Math.max(100, Math.min(HEARTBEAT_INTERVAL_MS, Math.floor(deadAfterMs / 3)));
}
