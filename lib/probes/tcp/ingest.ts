/**
 * The TCP kind's server half (lib/probes/kind.ts): the shared check-kind ingest
 * (lib/probes/phased_ingest.ts) with the TCP phases and failed reasons. Metrics:
 * prober_tcp_probes_total, prober_tcp_probes_failed_total, prober_tcp_failed,
 * prober_tcp_duration_seconds{phase}, prober_tcp_ssl_earliest_cert_expiry.
 */
import type { SeriesStore } from "../../metrics/series.ts";
import type { TcpResult } from "../../rpc/gen/probermesh/v1/tcp_pb.ts";
import { checkPhasedResult, phasedIngest, type PhasedSpec } from "../phased_ingest.ts";
import { FAILED_REASON_DOCS } from "./failed_reason.ts";

/**
 * The `phase` label's values of prober_tcp_duration_seconds, in order: resolve (name -> address),
 * connect (TCP established), tls (every handshake of the round summed: `tls: true` and `starttls` steps).
 */
export const TCP_PHASES = ["resolve", "connect", "tls"] as const;

/** TCP as a check kind. */
export const TCP_SPEC: PhasedSpec<TcpResult, (typeof TCP_PHASES)[number]> = {
  kind: "tcp",
  title: "TCP",
  phases: TCP_PHASES,
  phaseSeconds: (r) => [r.resolveSeconds, r.connectSeconds, r.tlsSeconds],
  address: (r) => r.address,
  failedReasons: FAILED_REASON_DOCS,
  tls: true,
};

/** Checks the numbers of a TCP result (assignment is checked by the caller). @returns "" or why it is unusable */
export const checkTcpResult = (r: TcpResult): string => checkPhasedResult(TCP_SPEC, r);

/** The TCP metrics on `store` and the ingest that feeds them. */
export const tcpIngest = (store: SeriesStore) => phasedIngest(TCP_SPEC, store);
