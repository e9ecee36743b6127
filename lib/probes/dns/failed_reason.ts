/**
 * The DNS probe's failed_reason values (label of prober_dns_failed and
 * prober_dns_probes_failed_total, DnsResult.failed_reason): defined here once. The prober's type,
 * the server's validation, docs/kinds/dns.md and the tests derive from this list.
 */

/** Every failed_reason with what it means; the order is the order of the checks. */
export const FAILED_REASON_DOCS = {
  resolve: "the DNS server's host name did not resolve (NXDOMAIN, no address of the wanted family, resolver error), or not before the module's timeout",
  connect: "the query could not be sent or was refused: TCP connection refused, reset or unreachable; over UDP an ICMP port or host unreachable, or source_ip_address not usable",
  tls: "dns_over_tls: the TLS handshake failed (certificate not trusted, wrong name, protocol error)",
  timeout: "the module's timeout ran out after the server's name resolved (connecting, in the TLS handshake, or waiting for a complete reply); the phases completed before it are still reported. Also an agent shutting down mid-probe (error \"aborted\")",
  protocol: "the reply was not a usable DNS message: malformed (no DNS header, a section that does not decode), a TCP reply with another query's id, or the TCP connection closed or reset before the reply was complete",
  rcode: "the reply's response code is not in valid_rcodes (default NOERROR)",
  answer_rrs: "validate_answer_rrs failed on the answer section",
  authority_rrs: "validate_authority_rrs failed on the authority section",
  additional_rrs: "validate_additional_rrs failed on the additional section",
} as const;

/** A failed_reason value. */
export type FailedReason = keyof typeof FAILED_REASON_DOCS;

/** Every failed_reason, in check order. */
export const FAILED_REASONS = Object.keys(FAILED_REASON_DOCS) as FailedReason[];

/** A probe that stopped for `reason`; `message` becomes DnsResult.error. */
export class ProbeFailure extends Error {
  constructor(readonly reason: FailedReason, message: string) {
    super(message);
  }
}
