/**
 * The TCP probe's failed_reason values (label of prober_tcp_failed and prober_tcp_probes_failed_total,
 * TcpResult.failed_reason): defined here once. The prober's type, the server's validation,
 * docs/kinds/tcp.md and the tests all derive from this list. blackbox_exporter has no such label;
 * where it sets a gauge for a cause (probe_failed_due_to_regex, probe_failed_due_to_bytes) the
 * reason says so.
 */

/** Every failed_reason with what it means; the order is the order of the checks. */
export const FAILED_REASON_DOCS = {
  resolve: "the host name did not resolve (NXDOMAIN, no address of the wanted family, resolver error), or the resolver did not answer before the module's timeout ran out",
  connect: "the TCP connection was refused, reset or unreachable, or source_ip_address could not be bound (not a local address, or not of the target's address family); with flows, any flow's connection was, or a flow's source port could not be bound (held by another socket: EADDRINUSE)",
  tls: "a TLS handshake failed (`tls: true` or a `starttls` step): certificate not trusted, wrong name, no client certificate for a server that requires one, no common protocol version, or the connection closed during the handshake; also a TLS alert on a later read (a TLS 1.3 server refuses a client certificate only then)",
  timeout: "the module's timeout ran out after the name resolved (connecting, in a TLS handshake, or waiting for the line or bytes a query_response step expects); the phases completed before it are still reported. Also an agent shutting down mid-probe. With flows: a flow not established in time, none refused",
  expect: "the connection closed before a line matched a query_response step's `expect` regexp (blackbox's probe_failed_due_to_regex 1)",
  expect_bytes: "the bytes read differ from a query_response step's `expect_bytes`, or the connection closed before that many bytes came (blackbox's probe_failed_due_to_bytes 1 for the former)",
  io: "the connection failed while the query_response dialogue read or wrote (reset, broken pipe; not a TLS alert), or a line was longer than 64 KiB (the limit of Go's bufio.Scanner, which blackbox reads lines with)",
} as const;

/** A failed_reason value. */
export type FailedReason = keyof typeof FAILED_REASON_DOCS;

/** Every failed_reason, in check order. */
export const FAILED_REASONS = Object.keys(FAILED_REASON_DOCS) as FailedReason[];

/** True when `s` is a failed_reason value. */
export function isFailedReason(s: string): s is FailedReason {
  return Object.hasOwn(FAILED_REASON_DOCS, s);
}

/** A probe's failure on its way to the result: the reason and the `error` text. */
export class ProbeFailure extends Error {
  constructor(readonly reason: FailedReason, message: string) {
    super(message);
  }
}
