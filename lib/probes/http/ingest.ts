/**
 * The HTTP kind's server half (lib/probes/kind.ts): the shared check-kind ingest
 * (lib/probes/phased_ingest.ts) with HTTP's phases, failed reasons and status-code gauge.
 * Metrics: prober_http_probes_total, prober_http_probes_failed_total, prober_http_failed,
 * prober_http_duration_seconds, prober_http_status_code, prober_http_ssl_earliest_cert_expiry.
 */
import type { SeriesStore } from "../../metrics/series.ts";
import type { HttpResult } from "../../rpc/gen/probermesh/v1/http_pb.ts";
import { checkPhasedResult, phasedIngest, type PhasedAggregate, type PhasedSpec } from "../phased_ingest.ts";
import { FAILED_REASON_DOCS } from "./failed_reason.ts";

/** HTTP phases of blackbox_exporter / httpstat, in order; the `phase` label's values. */
export const HTTP_PHASES = ["resolve", "connect", "tls", "processing", "transfer"] as const;

/** One HTTP (source, target region, URL) over one window; `latestValue` is the latest status code (0: no response). */
export type HttpAggregate = PhasedAggregate<(typeof HTTP_PHASES)[number]>;

/** HTTP as a check kind. */
export const HTTP_SPEC: PhasedSpec<HttpResult, (typeof HTTP_PHASES)[number]> = {
  kind: "http",
  title: "HTTP",
  phases: HTTP_PHASES,
  phaseSeconds: (r) => [r.resolveSeconds, r.connectSeconds, r.tlsSeconds, r.processingSeconds, r.transferSeconds],
  address: (r) => r.url,
  failedReasons: FAILED_REASON_DOCS,
  tls: true,
  latestValue: { name: "prober_http_status_code", help: "HTTP status code of the latest result of the last published window (0 when no response).", of: (r) => r.statusCode },
  check: (r) => (r.statusCode !== 0 && (r.statusCode < 100 || r.statusCode > 599) ? "status_code out of range" : ""),
};

/** Checks the numbers of an HTTP result (assignment is checked by the caller). @returns "" or why it is unusable */
export const checkHttpResult = (r: HttpResult): string => checkPhasedResult(HTTP_SPEC, r);

/** The HTTP metrics on `store` and the ingest that feeds them. */
export const httpIngest = (store: SeriesStore) => phasedIngest(HTTP_SPEC, store);
