/**
 * The path trace's shared half: why traces run and how the server checks a pushed PathTrace
 * (docs/protocol.md "PathTrace"). No FFI: the server loads this, never the tracer.
 */
import { isIP } from "node:net";
import type { PathTrace } from "../../rpc/gen/probermesh/v1/probermesh_pb.ts";
import { checkCommon, seconds } from "../result_common.ts";

/** Why a trace ran: the PathTrace.reason values, each with what it means. */
export const TRACE_REASONS = {
  error_state: "the target entered error state (a round lost packets or failed)",
  flow_lossy: "a flow (udp, tcp) lost at least half of its probes while the link's other flows lost under 5% (lib/probes/flow/lossy.ts)",
} as const;
export type TraceReason = keyof typeof TRACE_REASONS;

/** Most hops a trace may carry (-agent.trace.max.hops is at most 64). */
export const MAX_TRACE_HOPS = 64;
/** Most probes per hop the server accepts. */
const MAX_PROBES = 1000;
/** Most other addresses per hop (the tracer reports at most 4). */
const MAX_OTHER = 4;

/** Checks a pushed trace's numbers and strings. @returns "" or why it is unusable */
export function checkPathTrace(t: PathTrace): string {
  const common = checkCommon(t);
  if (common) return common;
  if (!t.address || t.address.length > 1024) return "address must be 1..1024 characters";
  if (t.resolvedIp && isIP(t.resolvedIp) === 0) return "resolved_ip is not an IP address";
  if (!(t.reason in TRACE_REASONS)) return `unknown reason "${t.reason.slice(0, 64)}"`;
  if (t.error.length > 1024) return "error longer than 1024 characters";
  if (t.hops.length > MAX_TRACE_HOPS) return `more than ${MAX_TRACE_HOPS} hops`;
  let ttl = 0;
  for (const h of t.hops) {
    if (!(h.ttl > ttl && h.ttl <= 255)) return "hop ttl values must rise, 1..255";
    ttl = h.ttl;
    if (h.address && isIP(h.address) === 0) return `hop ${h.ttl}: address is not an IP address`;
    if (h.sent > MAX_PROBES || h.received > h.sent) return `hop ${h.ttl}: sent/received out of range`;
    if (h.otherAddresses.length > MAX_OTHER || h.otherAddresses.some((a) => isIP(a) === 0)) return `hop ${h.ttl}: other_addresses must be at most ${MAX_OTHER} IP addresses`;
    if (![h.rttMeanSeconds, h.rttMinSeconds, h.rttMaxSeconds, h.rttStddevSeconds].every(seconds)) return `hop ${h.ttl}: rtt out of range`;
  }
  return "";
}
