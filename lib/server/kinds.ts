/** The registry of probe kinds' server halves (lib/probes/kind.ts), keyed by prober_type. No prober is imported here. */
import type { SeriesStore } from "../metrics/series.ts";
import { DNS_SPEC, checkDnsResult, dnsIngest } from "../probes/dns/ingest.ts";
import { GRPC_SPEC, checkGrpcResult, grpcIngest } from "../probes/grpc/ingest.ts";
import { HTTP_SPEC, checkHttpResult, httpIngest } from "../probes/http/ingest.ts";
import { checkIcmpResult, icmpIngest } from "../probes/icmp/ingest.ts";
import { PROBER_TYPES, type ProberType, type ServerKind } from "../probes/kind.ts";
import { TCP_SPEC, checkTcpResult, tcpIngest } from "../probes/tcp/ingest.ts";
import { checkUdpResult, udpIngest } from "../probes/udp/ingest.ts";

export const SERVER_KINDS = {
  icmp: { check: checkIcmpResult, ingest: icmpIngest },
  http: { check: checkHttpResult, ingest: httpIngest, spec: HTTP_SPEC },
  tcp: { check: checkTcpResult, ingest: tcpIngest, spec: TCP_SPEC },
  dns: { check: checkDnsResult, ingest: dnsIngest, spec: DNS_SPEC },
  grpc: { check: checkGrpcResult, ingest: grpcIngest, spec: GRPC_SPEC },
  udp: { check: checkUdpResult, ingest: udpIngest },
} satisfies { [K in ProberType]: ServerKind<K> };

/** Every kind's ingest on `store` (declaring its metrics), keyed by prober_type. */
export function createIngests(store: SeriesStore) {
  return Object.fromEntries(PROBER_TYPES.map((t) => [t, SERVER_KINDS[t].ingest(store)])) as { [K in ProberType]: ReturnType<(typeof SERVER_KINDS)[K]["ingest"]> };
}

/** The check kinds: those on the shared phased ingest (lib/probes/phased_ingest.ts), in registry order. */
export type CheckKind = { [K in keyof typeof SERVER_KINDS]: (typeof SERVER_KINDS)[K] extends { spec: unknown } ? K : never }[keyof typeof SERVER_KINDS];
export const CHECK_KINDS = PROBER_TYPES.filter((t): t is CheckKind => "spec" in SERVER_KINDS[t]);
