/**
 * The registry of probe kinds' common halves (lib/probes/kind.ts), keyed by prober_type. Config,
 * pools and the RPC service loop over it instead of naming kinds.
 */
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { dnsKind } from "./dns/kind.ts";
import { grpcKind } from "./grpc/kind.ts";
import { httpKind } from "./http/kind.ts";
import { icmpKind } from "./icmp/kind.ts";
import type { ModuleOf, ProbeKind, ProberType } from "./kind.ts";
import { tcpKind } from "./tcp/kind.ts";
import { udpKind } from "./udp/kind.ts";

export const PROBE_KINDS: { [K in ProberType]: ProbeKind<K> } = { icmp: icmpKind, http: httpKind, tcp: tcpKind, dns: dnsKind, grpc: grpcKind, udp: udpKind };

/**
 * The ICMP mesh kind: under -server.icmp.discovery dynamic its targets are also the known agents'
 * IPs of every other region, and an agent never gets its own IP.
 */
export const MESH_KIND = "icmp" satisfies ProberType;

/**
 * The flow-aware mesh kinds (since 0.6): under dynamic discovery their targets are also the known
 * agents' responders, `ip:port` (`[ip]:port` for IPv6) with the port the agent announced
 * (Agent.udp_port / tcp_port; 0 = none, and agents before 0.6 announce none). Same rules as the
 * ICMP mesh: never the agent's own IP, own region only with -server.probe.self, silent agents stay
 * until forgotten.
 */
export const MESH_FLOW_KINDS = ["udp", "tcp"] as const satisfies readonly ProberType[];
export type MeshFlowKind = (typeof MESH_FLOW_KINDS)[number];

/** Every kind whose targets can be known agents (dynamic discovery). */
export const MESH_KINDS = [MESH_KIND, ...MESH_FLOW_KINDS] as const satisfies readonly ProberType[];
/**
 * The mesh kinds whose probe-file block (module and targets) is merged with the agents' addresses
 * under dynamic discovery (tcp's mesh has its own module): their blocks may list no target.
 */
export const MESH_MERGED_KINDS = ["icmp", "udp"] as const satisfies readonly (typeof MESH_KINDS)[number][];

/**
 * The mesh's tcp connect probe, for agents' TCP listeners handed out by dynamic discovery (a file
 * `tcp` block with flows may list fixed ones): flows per round and the whole-probe timeout,
 * milliseconds. The module is PROBE_KINDS.tcp.defaultModule() with these (meshTcpModule()).
 */
export const MESH_TCP = { flows: 16, timeoutMs: 5000 } as const;

/** The module of the tcp mesh targets: the tcp default with MESH_TCP's flows and timeout. */
export function meshTcpModule(): ModuleOf<"tcp"> {
  const m = tcpKind.defaultModule();
  m.flows = MESH_TCP.flows;
  m.timeout = durationFromMs(MESH_TCP.timeoutMs);
  return m;
}

/** The `host:port` a flow mesh target of an agent is written as: `ip:port`, `[ip]:port` for IPv6. */
export function agentHostPort(ip: string, port: number): string {
  return ip.includes(":") ? `[${ip}]:${port}` : `${ip}:${port}`;
}
