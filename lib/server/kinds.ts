/** The registry of probe kinds' server halves (lib/probes/kind.ts), keyed by prober_type. No prober is imported here. */
import type { SeriesStore } from "../metrics/series.ts";
import { checkDnsResult, dnsIngest } from "../probes/dns/ingest.ts";
import { checkGrpcResult, grpcIngest } from "../probes/grpc/ingest.ts";
import { checkHttpResult, httpIngest } from "../probes/http/ingest.ts";
import { checkIcmpResult, icmpIngest } from "../probes/icmp/ingest.ts";
import { PROBER_TYPES, type ProberType, type ServerKind } from "../probes/kind.ts";
import { checkTcpResult, tcpIngest } from "../probes/tcp/ingest.ts";

export const SERVER_KINDS = {
  icmp: { check: checkIcmpResult, ingest: icmpIngest },
  http: { check: checkHttpResult, ingest: httpIngest },
  tcp: { check: checkTcpResult, ingest: tcpIngest },
  dns: { check: checkDnsResult, ingest: dnsIngest },
  grpc: { check: checkGrpcResult, ingest: grpcIngest },
} satisfies { [K in ProberType]: ServerKind<K> };

/** Every kind's ingest on `store` (declaring its metrics), keyed by prober_type. */
export function createIngests(store: SeriesStore) {
  return Object.fromEntries(PROBER_TYPES.map((t) => [t, SERVER_KINDS[t].ingest(store)])) as { [K in ProberType]: ReturnType<(typeof SERVER_KINDS)[K]["ingest"]> };
}
