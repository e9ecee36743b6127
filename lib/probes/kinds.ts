/**
 * The registry of probe kinds' common halves (lib/probes/kind.ts), keyed by prober_type. Config,
 * pools and the RPC service loop over it instead of naming kinds.
 */
import { dnsKind } from "./dns/kind.ts";
import { grpcKind } from "./grpc/kind.ts";
import { httpKind } from "./http/kind.ts";
import { icmpKind } from "./icmp/kind.ts";
import type { ProbeKind, ProberType } from "./kind.ts";
import { tcpKind } from "./tcp/kind.ts";

export const PROBE_KINDS: { [K in ProberType]: ProbeKind<K> } = { icmp: icmpKind, http: httpKind, tcp: tcpKind, dns: dnsKind, grpc: grpcKind };

/**
 * The kind of the mesh: under -server.icmp.discovery dynamic its targets are also the known
 * agents' IPs of every other region, and an agent never gets its own IP.
 */
export const MESH_KIND = "icmp" satisfies ProberType;
