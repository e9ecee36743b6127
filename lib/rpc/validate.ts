/**
 * Validation of pushed results: a forged or broken result must never create a series
 * (SPEC.md "RPC semantics"). Returns a reason string, or "" when the result is acceptable.
 */
import type { Agent, HttpResult, IcmpResult } from "./gen/probermesh/v1/probermesh_pb.ts";
import { isIP } from "node:net";

/** Upper bound for any duration field, seconds: nothing a probe measures takes an hour. */
const MAX_SECONDS = 3600;
/** Upper bound for packets in one ICMP result. */
const MAX_PACKETS = 100_000;
/** failed_reason values an agent may report (see lib/probes/http/prober.ts). */
export const HTTP_FAILED_REASONS = new Set(["", "resolve", "connect", "tls", "timeout", "status_code", "body_regexp", "http_protocol", "redirects"]);

const seconds = (v: number) => Number.isFinite(v) && v >= 0 && v <= MAX_SECONDS;

/** Checks an Agent message. @returns "" or the reason it is unusable */
export function checkAgent(a: Agent | undefined): string {
  if (!a) return "agent is missing";
  if (!a.region || a.region.length > 256) return "agent.region must be 1..256 characters";
  if (a.ip && isIP(a.ip) === 0) return `agent.ip "${a.ip.slice(0, 64)}" is not an IP address`;
  if (a.version.length > 64 || a.hostname.length > 256) return "agent.version or agent.hostname too long";
  return "";
}

/** Checks the numbers of an ICMP result (assignment is checked by the caller). */
export function checkIcmpResult(r: IcmpResult): string {
  if (r.sent > MAX_PACKETS) return "sent out of range";
  if (r.received > r.sent) return "received > sent";
  if (r.rttsSeconds.length !== r.received) return "rtts_seconds length != received";
  if (!r.rttsSeconds.every(seconds)) return "rtt out of range";
  if (![r.minSeconds, r.meanSeconds, r.maxSeconds, r.stddevSeconds, r.resolveSeconds].every(seconds)) return "statistic out of range";
  return "";
}

/** Checks the numbers of an HTTP result (assignment is checked by the caller). */
export function checkHttpResult(r: HttpResult): string {
  if (![r.resolveSeconds, r.connectSeconds, r.tlsSeconds, r.processingSeconds, r.transferSeconds].every(seconds)) return "phase out of range";
  if (r.statusCode !== 0 && (r.statusCode < 100 || r.statusCode > 599)) return "status_code out of range";
  if (!HTTP_FAILED_REASONS.has(r.failedReason)) return `unknown failed_reason "${r.failedReason.slice(0, 32)}"`;
  if (r.success !== (r.failedReason === "")) return "success and failed_reason disagree";
  if (r.sslEarliestCertExpiry < 0n || r.sslEarliestCertExpiry > 32503680000n) return "ssl_earliest_cert_expiry out of range";
  return "";
}
