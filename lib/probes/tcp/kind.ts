/**
 * The TCP kind's common half (lib/probes/kind.ts): the probe file's `tcp:` module with
 * blackbox_exporter's <tcp_probe> names and meaning (its CONFIGURATION.md, config/config.go),
 * parsed straight into the protobuf TcpModule handed to agents; and TCP target addressing
 * (`host:port`, `[v6]:port`: lib/probes/host_port.ts).
 *
 * Validation as blackbox's config loading: an `expect` that does not compile is refused
 * ("Could not compile regular expression"), expect and expect_bytes are exclusive, tls_config as
 * Prometheus' common config (lib/probes/tls.ts). Stricter where blackbox would only fail at probe
 * time: source_ip_address must be an IP literal.
 *
 * `flows` is ProberMesh's (issue 19): n >= 1 turns the module into the mesh's connect probe
 * (lib/probes/tcp/flows.ts), which refuses tls, tls_config and query_response.
 */
import { isIP } from "node:net";
import { clone, create, toJson } from "@bufbuild/protobuf";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { z } from "zod";
import { parseDurationMs } from "../../cli/duration.ts";
import { TcpModuleSchema, TcpQueryResponseSchema, TcpResultSchema, TcpTargetSchema, type TcpModule, type TcpQueryResponse } from "../../rpc/gen/probermesh/v1/tcp_pb.ts";
import type { ProbeKind } from "../kind.ts";
import { durationString } from "../schema_types.ts";
import { redactTlsConfig, tlsConfigFrom, tlsConfigKeys, type FileReader } from "../tls.ts";
import { TCP_DEFAULTS, TCP_FLOW_PORTS, TCP_MAX_FLOWS } from "./defaults.ts";
import { FAILED_REASON_DOCS } from "./failed_reason.ts";
import { goRegexpError } from "../regexp.ts";
import { normaliseHostPortTarget } from "../host_port.ts";

/**
 * A text or byte value of query_response: a string, a YAML `!!binary` value (postgresql's
 * SSLRequest in blackbox's example.yml), or a number (Go's YAML decoder takes `220` as "220").
 */
const textOrBytes = z.union([z.string(), z.instanceof(Uint8Array), z.number().transform(String)]);

const step = z
  .strictObject({
    expect: z.union([z.string(), z.number().transform(String)]).nullable().optional(),
    expect_bytes: textOrBytes.nullable().optional(),
    labels: z.unknown().optional(),
    send: textOrBytes.nullable().optional(),
    starttls: z.boolean().nullable().optional(),
  })
  .nullable();

/** The `tcp:` keys as written in the file (blackbox_exporter's names); docs/kinds/tcp.md lists them from here. */
export const tcpKeys = z.strictObject({
  timeout: durationString.optional().describe(`deadline of the whole probe: resolve, connect, handshakes and the query_response dialogue (default ${TCP_DEFAULTS.timeoutMs / 1000}s); blackbox's module-level timeout`),
  preferred_ip_protocol: z.enum(["ip4", "ip6"]).optional().describe(`address family tried first for a name (default ${TCP_DEFAULTS.preferredIpProtocol}; blackbox_exporter defaults to ip6)`),
  ip_protocol_fallback: z.boolean().optional().describe(`use the other family when the preferred one has no address (default ${TCP_DEFAULTS.ipProtocolFallback})`),
  source_ip_address: z.string().refine((s) => isIP(s) !== 0, "must be an IPv4 or IPv6 address").optional()
    .describe("local IP address the connection is bound to; it must be an address of the agent's host, of the target's family"),
  query_response: z.array(step).optional()
    .describe('the dialogue after connecting, a list of steps {expect, expect_bytes, send, starttls}: expect is an RE2 regexp matched against each line read until one matches; expect_bytes must be the next bytes exactly (not with expect); send is written followed by "\\n", with ${1} / ${name} from the step\'s expect match; starttls: true upgrades the connection to TLS (tls_config). labels (probe_expect_info) is refused'),
  tls: z.boolean().optional().describe("TLS handshake right after the TCP connection (default false)"),
  tls_config: tlsConfigKeys.optional(),
  flows: z.number().int().min(0).max(TCP_MAX_FLOWS).optional()
    .describe(`ProberMesh's own, not blackbox's: 0 (default) = blackbox's probe, one connection from a port the kernel chooses; 1..${TCP_MAX_FLOWS} = the mesh's connect probe (Pingmesh): one connection per flow, each from its own source port of the agent's -agent.tcp.flow.ports (default ${TCP_FLOW_PORTS}; at most that many flows), reset right after the handshake, timed by the kernel (SYN -> SYN-ACK); a flow whose SYN had to be retransmitted counts as lost. source_ip_address applies; tls, tls_config and query_response are refused (a connect probe sends nothing)`),
});

/** The keys a connect probe (flows >= 1) refuses: it resets the connection after the handshake. */
const NOT_WITH_FLOWS = ["tls", "tls_config", "query_response"] as const;

/** The keys as parsed. */
type TcpKeys = z.infer<typeof tcpKeys>;

const bytesOf = (v: string | Uint8Array | null | undefined): Uint8Array => (v == null ? new Uint8Array() : typeof v === "string" ? new TextEncoder().encode(v) : new Uint8Array(v));

/** The query_response steps, each checked as blackbox's config loader does; problems go to `r`. */
function stepsFrom(k: TcpKeys, r: FileReader): TcpQueryResponse[] {
  return (k.query_response ?? []).map((s, i) => {
    const at = ["query_response", i];
    if (!s) return create(TcpQueryResponseSchema);
    if (s.expect != null) {
      const why = goRegexpError(s.expect);
      if (why) r.issue([...at, "expect"], `"Could not compile regular expression" regexp=${JSON.stringify(s.expect)}: ${why}`);
    }
    const expectBytes = bytesOf(s.expect_bytes);
    if (s.expect != null && expectBytes.length) r.issue([...at, "expect_bytes"], "expect and expect_bytes are mutually exclusive");
    if (s.labels !== undefined) {
      r.issue([...at, "labels"], "labels (blackbox's probe_expect_info metric) is not supported: its label names would come from the probe file, and ProberMesh's metrics have fixed label names; remove it");
    }
    return create(TcpQueryResponseSchema, { expect: s.expect ?? undefined, expectBytes, send: bytesOf(s.send), starttls: s.starttls ?? false });
  });
}

/**
 * The `tcp:` module schema: validates the keys, reads tls_config's files (relative to `baseDir`,
 * the probe file's directory; an unreadable or non-PEM file is an issue at that key) and builds
 * the TcpModule with defaults filled in.
 */
function tcpModuleSchema(baseDir: string): z.ZodType<TcpModule, unknown> {
  return tcpKeys.transform((k, ctx): TcpModule => {
    const files: FileReader = { baseDir, issue: (path, message) => ctx.addIssue({ code: "custom", path, message }) };
    if (k.flows) {
      for (const key of NOT_WITH_FLOWS) {
        const v = k[key];
        if (v !== undefined && v !== false && !(Array.isArray(v) && v.length === 0)) files.issue([key], `${key} does not apply with flows: ${k.flows} (a connect probe resets each connection right after the handshake); remove ${key} or set flows: 0`);
      }
    }
    return create(TcpModuleSchema, {
      timeout: durationFromMs(k.timeout ? parseDurationMs(k.timeout) : TCP_DEFAULTS.timeoutMs),
      tlsConfig: tlsConfigFrom(k.tls_config, files),
      preferredIpProtocol: k.preferred_ip_protocol ?? TCP_DEFAULTS.preferredIpProtocol,
      ipProtocolFallback: k.ip_protocol_fallback ?? TCP_DEFAULTS.ipProtocolFallback,
      sourceIpAddress: k.source_ip_address ?? "",
      queryResponse: stepsFrom(k, files),
      tls: k.tls ?? false,
      flows: k.flows ?? 0,
    });
  });
}

/** A copy of `m` with tls_config's client key replaced by `placeholder`. */
export function redactTcpModule(m: TcpModule, placeholder: string): TcpModule {
  const r = clone(TcpModuleSchema, m);
  redactTlsConfig(r.tlsConfig, placeholder);
  return r;
}

export const tcpKind: ProbeKind<"tcp"> = {
  type: "tcp",
  resultSchema: TcpResultSchema,
  keys: tcpKeys,
  failedReasons: FAILED_REASON_DOCS,
  moduleSchema: tcpModuleSchema,
  defaultModule: () => tcpModuleSchema("/").parse({}),
  normaliseTarget: normaliseHostPortTarget,
  targetDescription: "host:port",
  target: (targetRegion, address, module) => create(TcpTargetSchema, { targetRegion, address, module }),
  moduleJson: (m) => toJson(TcpModuleSchema, m),
  redactModule: redactTcpModule,
  addressOf: (t) => t.address,
};
