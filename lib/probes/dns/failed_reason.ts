/**
 * The DNS probe's failed_reason values (label of prober_dns_failed and prober_dns_probes_failed_total,
 * DnsResult.failed_reason): defined here once; the prober, the server's validation and docs derive from it.
 * STUB: the dns kind's owner replaces this file.
 */

/** Every failed_reason with what it means; the order is the order of the checks. */
export const FAILED_REASON_DOCS = {
  resolve: "the host name did not resolve, or not before the module's timeout",
  connect: "the TCP connection was refused, reset or unreachable",
  timeout: "the module's timeout ran out",
} as const;

/** A failed_reason value. */
export type FailedReason = keyof typeof FAILED_REASON_DOCS;
