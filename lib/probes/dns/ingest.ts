/**
 * The DNS kind's server half (lib/probes/kind.ts): the shared check-kind ingest
 * (lib/probes/phased_ingest.ts) with the DNS phases and failed reasons.
 */
import type { SeriesStore } from "../../metrics/series.ts";
import type { DnsResult } from "../../rpc/gen/probermesh/v1/dns_pb.ts";
import { checkPhasedResult, phasedIngest, type PhasedSpec } from "../phased_ingest.ts";
import { seconds } from "../result_common.ts";
import { FAILED_REASON_DOCS } from "./failed_reason.ts";

/**
 * The `phase` label's values of prober_dns_duration_seconds, in order:
 *   resolve  the DNS server's own name -> address (0 for an IP literal)
 *   query    query written -> complete reply read (blackbox's "request" phase); TCP connect and
 *            the TLS handshake are not in it (DnsResult.connect_seconds / tls_seconds)
 */
export const DNS_PHASES = ["resolve", "query"] as const;

/** DNS as a check kind. */
export const DNS_SPEC: PhasedSpec<DnsResult, (typeof DNS_PHASES)[number]> = {
  kind: "dns",
  title: "DNS",
  phases: DNS_PHASES,
  phaseSeconds: (r) => [r.resolveSeconds, r.querySeconds],
  address: (r) => r.address,
  failedReasons: FAILED_REASON_DOCS,
  tls: true,
  check: (r) => (!seconds(r.connectSeconds) || !seconds(r.tlsSeconds) ? "connect_seconds or tls_seconds out of range" : ""),
};

/** Checks the numbers of a DNS result (assignment is checked by the caller). @returns "" or why it is unusable */
export const checkDnsResult = (r: DnsResult): string => checkPhasedResult(DNS_SPEC, r);

/** The DNS metrics on `store` and the ingest that feeds them. */
export const dnsIngest = (store: SeriesStore) => phasedIngest(DNS_SPEC, store);
