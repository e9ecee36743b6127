/**
 * Probe kinds: the one small interface every probe type implements, in three halves, like
 * blackbox_exporter's `Probers` map and Cloudprober's `probes/<type>/`. Each kind lives in
 * lib/probes/<kind>/ and supplies
 *
 *   - common (kind.ts):   its probe-file module schema (parsed straight into the protobuf module),
 *                         how targets are written and addressed;
 *   - agent (prober.ts):  the Prober that runs one round against one target;
 *   - server (ingest.ts): result validation, window aggregation and metric publishing.
 *
 * The halves are collected in three registries (lib/probes/kinds.ts, lib/agent/kinds.ts,
 * lib/server/kinds.ts) typed `{ [K in ProberType]: ... }`, so a kind missing a half does not
 * compile. The server never imports a prober (the ICMP prober loads libc through FFI).
 */
import type { GenMessage } from "@bufbuild/protobuf/codegenv2";
import type { z } from "zod";
import type { KindIngest } from "../aggregation/window.ts";
import type { SeriesStore } from "../metrics/series.ts";
import type { DnsModule, DnsResult, DnsTarget } from "../rpc/gen/probermesh/v1/dns_pb.ts";
import type { GrpcModule, GrpcResult, GrpcTarget } from "../rpc/gen/probermesh/v1/grpc_pb.ts";
import type { HttpModule, HttpResult, HttpTarget } from "../rpc/gen/probermesh/v1/http_pb.ts";
import type { IcmpModule, IcmpResult, IcmpTarget } from "../rpc/gen/probermesh/v1/icmp_pb.ts";
import type { TcpModule, TcpResult, TcpTarget } from "../rpc/gen/probermesh/v1/tcp_pb.ts";
import type { UdpModule, UdpResult, UdpTarget } from "../rpc/gen/probermesh/v1/udp_pb.ts";

/** The protobuf messages of each kind: the only place the set of kinds is spelled out. */
export interface KindTypes {
  icmp: { target: IcmpTarget; result: IcmpResult; module: IcmpModule };
  http: { target: HttpTarget; result: HttpResult; module: HttpModule };
  tcp: { target: TcpTarget; result: TcpResult; module: TcpModule };
  dns: { target: DnsTarget; result: DnsResult; module: DnsModule };
  grpc: { target: GrpcTarget; result: GrpcResult; module: GrpcModule };
  udp: { target: UdpTarget; result: UdpResult; module: UdpModule };
}

/** Probe types, the value of the prober_type label and of the probe file's `prober_type`. */
export type ProberType = keyof KindTypes;

/** Every ProberType, in the order kinds are listed in pools, pushes and docs (udp, since 0.6, last so the older order stays). */
export const PROBER_TYPES = ["icmp", "http", "tcp", "dns", "grpc", "udp"] as const satisfies readonly ProberType[];

export type TargetOf<K extends ProberType> = KindTypes[K]["target"];
export type ResultOf<K extends ProberType> = KindTypes[K]["result"];
export type ModuleOf<K extends ProberType> = KindTypes[K]["module"];

/** The half of a kind every binary shares: configuration and addressing. */
export interface ProbeKind<K extends ProberType> {
  readonly type: K;
  /**
   * zod schema of the kind's module key in a probe-file block (`icmp:` / `http:`), producing the
   * protobuf module with every default filled in. Files it names (ca_file) are read relative to
   * `baseDir`; errors are zod issues with the path of the offending key.
   */
  moduleSchema(baseDir: string): z.ZodType<ModuleOf<K>, unknown>;
  /** The module's keys as written in the file (zod shape with a description per key): docs/configuration.md is generated from it. */
  readonly keys: z.ZodObject;
  /** Every failed_reason of the kind with its meaning (its failed_reason.ts); absent for kinds that report loss instead (icmp, udp). */
  readonly failedReasons?: Readonly<Record<string, string>>;
  /** The module of a block that has none. */
  defaultModule(): ModuleOf<K>;
  /** The result message's schema (sizes, encoding). */
  readonly resultSchema: GenMessage<ResultOf<K>>;
  /** A probe-file target in canonical form, or null when it is not one (e.g. not a URL). */
  normaliseTarget(s: string): string | null;
  /** What a target must be, for error messages ("IP address or host name"). */
  readonly targetDescription: string;
  /** The pool entry for `address` of `targetRegion`. */
  target(targetRegion: string, address: string, module: ModuleOf<K>): TargetOf<K>;
  /** The module in protobuf JSON form (for /-/targets, after redactModule). */
  moduleJson(m: ModuleOf<K>): unknown;
  /** A copy of the module with every secret (tokens, passwords, credential headers) replaced by `placeholder`. */
  redactModule(m: ModuleOf<K>, placeholder: string): ModuleOf<K>;
  /** The address a pool entry or a result names (IcmpTarget.address, HttpTarget.url, ...). */
  addressOf(t: TargetOf<K> | ResultOf<K>): string;
}

/** A prober's readiness, logged by the agent at start. */
export interface ProberStatus {
  /** false: this kind cannot probe here (e.g. no ICMP socket); its targets are skipped. */
  ready: boolean;
  /** One line for the log: what it uses, or exactly what is missing. */
  message: string;
  /** Structured details for the log. */
  fields?: Record<string, unknown>;
}

/** The agent half: runs rounds. */
export interface Prober<K extends ProberType> {
  readonly type: K;
  status(): ProberStatus;
  /**
   * Runs one round against one target and resolves with its final result: nothing changes the
   * result after that. Never rejects for network failures: those are reported in the result
   * (error / failed_reason). `signal` aborts a round early (agent shutdown).
   */
  probe(target: TargetOf<K>, signal?: AbortSignal): Promise<ResultOf<K>>;
  /** Releases sockets. */
  close(): void;
}

/** The server half: what the server does with pushed results of this kind. */
export interface ServerKind<K extends ProberType> {
  /** @returns "" when the result's numbers are usable, else why not (it is then rejected as invalid) */
  check(r: ResultOf<K>): string;
  /** Declares the kind's metrics on `store` and returns what feeds them. */
  ingest(store: SeriesStore): KindIngest<ResultOf<K>>;
  /** Check kinds only (success + failed_reason + phases): the shared ingest's spec (lib/probes/phased_ingest.ts). */
  spec?: { kind: string; title: string; phases: readonly string[] };
}
