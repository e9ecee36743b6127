/**
 * Size limits of the RPC protocol (docs/security.md "Limits"), shared by server and agent.
 *
 * The largest legitimate push: an agent at its design limit of 10,000 ICMP targets with 64 echoes
 * each sends about 620 bytes per result in binary protobuf (64 RTTs of 8 bytes plus the summary
 * fields), 6.2 MB per interval, plus up to 1,000 HTTP results of about 150 bytes. A udp result
 * (0.6) is its summary, 20 histogram counts and about 30 bytes per flow (16 by default, 1,024 at
 * most: about 31 KB), so one result always fits a push. Agents split a
 * batch into pushes of at most PUSH_SPLIT_BYTES; the server refuses bodies over MAX_RPC_BYTES
 * (twice that, for JSON-encoded pushes from other clients) with resource_exhausted.
 */

/** Largest request body the server reads, bytes. */
export const MAX_RPC_BYTES = 8 << 20;

/** Agents split a batch so that each push stays under this many bytes. */
export const PUSH_SPLIT_BYTES = 4 << 20;

/** Deadline of every RPC an agent makes, milliseconds (a hung server never blocks the agent). */
export const RPC_DEADLINE_MS = 15_000;
