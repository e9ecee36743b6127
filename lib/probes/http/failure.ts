/** The HTTP probe's failure: a failed_reason (failed_reason.ts) and a human-readable detail. */
import type { FailedReason } from "./failed_reason.ts";

/** Thrown inside a probe and turned into the result's failed_reason and error; never escapes probe(). */
export class ProbeFailure extends Error {
  constructor(readonly reason: FailedReason, message: string) {
    super(message);
  }
}
