/**
 * The gRPC kind's common half (lib/probes/kind.ts): the probe file's `grpc:` module with
 * blackbox_exporter's <grpc_probe> names and meaning (its CONFIGURATION.md, config.GRPCProbe),
 * parsed straight into the protobuf GrpcModule handed to agents; and target addressing
 * (`host:port`, `[v6]:port`, as blackbox's grpc targets are written).
 */
import { clone, create, toJson } from "@bufbuild/protobuf";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { z } from "zod";
import { parseDurationMs } from "../../cli/duration.ts";
import { GrpcMetadataSchema, GrpcModuleSchema, GrpcResultSchema, GrpcTargetSchema, type GrpcModule } from "../../rpc/gen/probermesh/v1/grpc_pb.ts";
import type { ProbeKind } from "../kind.ts";
import { durationString } from "../schema_types.ts";
import { redactTlsConfig, tlsConfigFrom, tlsConfigKeys, type FileReader } from "../tls.ts";
import { FAILED_REASON_DOCS } from "./failed_reason.ts";
import { normaliseHostPortTarget } from "../host_port.ts";

/** Defaults of a `grpc:` module; durations in milliseconds. */
export const GRPC_DEFAULTS = {
  /** Whole-probe deadline (blackbox_exporter's module timeout defaults to 10 s too). */
  timeoutMs: 10_000,
  /** As the other kinds here; blackbox_exporter defaults to ip6. */
  preferredIpProtocol: "ip4",
  ipProtocolFallback: true,
} as const;

/**
 * Metadata keys the prober sets itself (gRPC over HTTP/2: content-type, te, grpc-timeout, ...) or
 * that HTTP/2 forbids (connection-specific headers, RFC 9113 §8.2.2): refused in the file.
 */
export const RESERVED_METADATA = new Set([
  "content-type", "te", "grpc-timeout", "grpc-encoding", "grpc-accept-encoding", "grpc-message", "grpc-status", "grpc-status-details-bin", "grpc-message-type",
  "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "host",
]);

/** Metadata keys whose values are credentials: redacted in /-/targets. */
const SECRET_METADATA = /auth|token|secret|passw|cookie|api[-_.]?key|credential|session/;

/** A gRPC metadata key (grpc-go's rule): lower-case letters, digits, `-`, `_`, `.`; upper case is lowered. */
const METADATA_KEY = /^[0-9a-z_.-]+$/;

/** The `grpc:` keys as written in the file (blackbox_exporter's names); docs list them from here. */
export const grpcKeys = z.strictObject({
  service: z.string().optional().describe('health service name sent in HealthCheckRequest.service (default "": the server as a whole)'),
  tls: z.boolean().optional().describe("connect with TLS, ALPN h2 (default false: HTTP/2 over plain TCP, h2c with prior knowledge)"),
  // .optional() does not carry the inner schema's description: given again for the docs table.
  tls_config: tlsConfigKeys.optional().describe(`used when tls is true: ${tlsConfigKeys.description}`),
  metadata: z.record(z.string(), z.array(z.string())).optional()
    .describe('request metadata {key: [values]} sent as HTTP/2 headers, one per value; keys are lower-cased; values of "-bin" keys are raw bytes, sent base64 (as grpc-go); keys the call sets (content-type, te, grpc-timeout, grpc-status, grpc-message, grpc-encoding ...) and HTTP/2 connection headers are refused; values of credential-like keys are hidden in /-/targets'),
  timeout: durationString.optional().describe(`deadline of the whole probe, resolve to trailers (default ${GRPC_DEFAULTS.timeoutMs / 1000}s; blackbox's module-level timeout)`),
  preferred_ip_protocol: z.enum(["ip4", "ip6"]).optional().describe(`address family tried first for a name (default ${GRPC_DEFAULTS.preferredIpProtocol}; blackbox_exporter defaults to ip6)`),
  ip_protocol_fallback: z.boolean().optional().describe(`use the other family when the preferred one has no address (default ${GRPC_DEFAULTS.ipProtocolFallback})`),
});

/** Checks one metadata key and its values; `issue(message)` reports a problem at that key. */
function checkMetadata(key: string, values: string[], issue: (message: string) => void): void {
  if (!METADATA_KEY.test(key)) return issue(`metadata key "${key}" may hold only letters, digits, "-", "_" and "."`);
  if (RESERVED_METADATA.has(key)) return issue(`metadata key "${key}" is set by the prober (or not allowed in HTTP/2)`);
  if (key.endsWith("-bin")) return;
  const bad = values.find((v) => !/^[\x20-\x7e]*$/.test(v));
  if (bad !== undefined) issue(`metadata "${key}" has a value with characters other than printable ASCII (use a "-bin" key for bytes)`);
}

/**
 * The `grpc:` module schema: validates the keys, reads tls_config's files (relative to `baseDir`,
 * the probe file's directory; an unreadable or malformed file is an issue at that key) and builds
 * the GrpcModule with defaults filled in.
 */
function grpcModuleSchema(baseDir: string): z.ZodType<GrpcModule, unknown> {
  return grpcKeys.transform((g, ctx): GrpcModule => {
    const files: FileReader = { baseDir, issue: (path, message) => ctx.addIssue({ code: "custom", path, message }) };
    const metadata = Object.entries(g.metadata ?? {}).flatMap(([k, values]) => {
      const key = k.toLowerCase();
      checkMetadata(key, values, (message) => ctx.addIssue({ code: "custom", path: ["metadata", k], message }));
      return values.map((value) => create(GrpcMetadataSchema, { key, value }));
    });
    return create(GrpcModuleSchema, {
      timeout: durationFromMs(g.timeout ? parseDurationMs(g.timeout) : GRPC_DEFAULTS.timeoutMs),
      tlsConfig: tlsConfigFrom(g.tls_config, files),
      service: g.service ?? "",
      tls: g.tls ?? false,
      preferredIpProtocol: g.preferred_ip_protocol ?? GRPC_DEFAULTS.preferredIpProtocol,
      ipProtocolFallback: g.ip_protocol_fallback ?? GRPC_DEFAULTS.ipProtocolFallback,
      metadata,
    });
  });
}

/** A copy of `m` with tls_config's client key and credential-like metadata values replaced by `placeholder`. */
export function redactGrpcModule(m: GrpcModule, placeholder: string): GrpcModule {
  const r = clone(GrpcModuleSchema, m);
  redactTlsConfig(r.tlsConfig, placeholder);
  for (const md of r.metadata) if (SECRET_METADATA.test(md.key)) md.value = placeholder;
  return r;
}

export const grpcKind: ProbeKind<"grpc"> = {
  type: "grpc",
  resultSchema: GrpcResultSchema,
  keys: grpcKeys,
  failedReasons: FAILED_REASON_DOCS,
  moduleSchema: grpcModuleSchema,
  defaultModule: () => grpcModuleSchema("/").parse({}),
  normaliseTarget: normaliseHostPortTarget,
  targetDescription: "host:port",
  target: (targetRegion, address, module) => create(GrpcTargetSchema, { targetRegion, address, module }),
  moduleJson: (m) => toJson(GrpcModuleSchema, m),
  redactModule: redactGrpcModule,
  addressOf: (t) => t.address,
};
