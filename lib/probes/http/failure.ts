/** The HTTP probe's failure: a failed_reason (failed_reason.ts) and a human-readable detail. */
import type { FailedReason } from "./failed_reason.ts";

/** Thrown inside a probe and turned into the result's failed_reason and error; never escapes probe(). */
export class ProbeFailure extends Error {
  constructor(readonly reason: FailedReason, message: string) {
    super(message);
  }
}

/**
 * A socket error during the exchange: a TLS alert after the handshake (TLS 1.3 servers judge the
 * client certificate after the client's Finished, so a refusal arrives as an alert on the first
 * read) is failed_reason "tls"; anything else "http_protocol".
 */
export function exchangeFailure(e: Error, context = ""): ProbeFailure {
  const code = (e as NodeJS.ErrnoException).code ?? "";
  return code.startsWith("ERR_SSL") ? new ProbeFailure("tls", `TLS alert: ${e.message}`) : new ProbeFailure("http_protocol", `${context}${e.message}`);
}
