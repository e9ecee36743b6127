/**
 * The `http:` module of a probe-file block: blackbox_exporter's http prober options (names and
 * meaning as in its CONFIGURATION.md), validated by zod and resolved into HttpModuleConfig, then
 * into the protobuf HttpModule handed to agents.
 */
import { readFileSync } from "node:fs";
import { isAbsolute, join } from "node:path";
import { create } from "@bufbuild/protobuf";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { z } from "zod";
import { parseDurationMs } from "../cli/duration.ts";
import { durationString, regexString } from "./schema_types.ts";
import { HttpModuleSchema, type HttpModule } from "../rpc/gen/probermesh/v1/probermesh_pb.ts";
import { HTTP_DEFAULTS } from "../probes/http/defaults.ts";

/** HTTP module default whole-probe timeout (blackbox_exporter's default is 10 s too). */
export const HTTP_DEFAULT_TIMEOUT_MS = HTTP_DEFAULTS.timeoutMs;

/** blackbox_exporter's header regexp check. */
export interface HeaderMatchConfig {
  header: string;
  regexp: string;
  allowMissing: boolean;
}

/** Resolved HTTP module; timeout in milliseconds, body size limit in bytes (0 = none). */
export interface HttpModuleConfig {
  method: string;
  validStatusCodes: number[];
  validHttpVersions: string[];
  headers: Record<string, string>;
  body: string;
  noFollowRedirects: boolean;
  failIfSsl: boolean;
  failIfNotSsl: boolean;
  failIfBodyMatchesRegexp: string[];
  failIfBodyNotMatchesRegexp: string[];
  failIfHeaderMatches: HeaderMatchConfig[];
  failIfHeaderNotMatches: HeaderMatchConfig[];
  timeoutMs: number;
  /** tls_config.insecure_skip_verify (the top-level key is accepted too). */
  insecureSkipVerify: boolean;
  /** tls_config.ca_file, read by the server: PEM text ("" = system roots). */
  caPem: string;
  /** tls_config.server_name ("" = the URL's host). */
  serverName: string;
  basicAuth?: { username: string; password: string };
  bearerToken: string;
  bodySizeLimit: number;
  preferredIpProtocol: "ip4" | "ip6";
  ipProtocolFallback: boolean;
}

const UNITS: Record<string, number> = { "": 1, B: 1, KB: 1024, KIB: 1024, MB: 1024 ** 2, MIB: 1024 ** 2, GB: 1024 ** 3, GIB: 1024 ** 3 };

/** "1MB", "512KiB", "2048" or a number → bytes (base 2, as blackbox's units.Base2Bytes); null when malformed. */
export function parseBytes(v: number | string): number | null {
  if (typeof v === "number") return Number.isInteger(v) && v >= 0 ? v : null;
  const m = /^\s*(\d+)\s*([a-zA-Z]*)\s*$/.exec(v);
  const unit = m ? UNITS[m[2]!.toUpperCase()] : undefined;
  return m && unit !== undefined ? Number(m[1]) * unit : null;
}

const headerMatch = z.strictObject({ header: z.string().min(1, "must not be empty"), regexp: regexString, allow_missing: z.boolean().optional() });

/** The zod schema of the `http:` key. */
export const httpModuleSchema = z.strictObject({
  method: z.string().regex(/^[A-Z]+$/, "must be an upper-case HTTP method").optional(),
  valid_status_codes: z.array(z.int().min(100).max(599)).optional(),
  valid_http_versions: z.array(z.string().regex(/^HTTP\/\d(\.\d)?$/, 'must look like "HTTP/1.1"')).optional(),
  headers: z.record(z.string(), z.string()).optional(),
  body: z.string().optional(),
  no_follow_redirects: z.boolean().optional(),
  fail_if_ssl: z.boolean().optional(),
  fail_if_not_ssl: z.boolean().optional(),
  fail_if_body_matches_regexp: z.array(regexString).optional(),
  fail_if_body_not_matches_regexp: z.array(regexString).optional(),
  fail_if_header_matches: z.array(headerMatch).optional(),
  fail_if_header_not_matches: z.array(headerMatch).optional(),
  timeout: durationString.optional(),
  insecure_skip_verify: z.boolean().optional(),
  tls_config: z.strictObject({ insecure_skip_verify: z.boolean().optional(), ca_file: z.string().min(1).optional(), server_name: z.string().optional() }).optional(),
  basic_auth: z.strictObject({ username: z.string(), password: z.string() }).optional(),
  bearer_token: z.string().min(1).optional(),
  body_size_limit: z.union([z.int(), z.string()]).refine((v) => parseBytes(v) !== null, 'must be a byte count such as 1048576, "512KiB" or "1MB"').optional(),
  preferred_ip_protocol: z.enum(["ip4", "ip6"]).optional(),
  ip_protocol_fallback: z.boolean().optional(),
});

/** A module option that is well-formed but unusable (e.g. an unreadable ca_file); `path` is under `http`. */
export class ModuleError extends Error {
  constructor(readonly path: string[], message: string) {
    super(message);
  }
}

/**
 * Resolves a validated `http:` value: defaults filled, durations to ms, ca_file read.
 * @param baseDir directory relative ca_file paths are taken from (the probe file's)
 * @throws ModuleError when ca_file cannot be read or holds no PEM certificate
 */
export function resolveHttpModule(h: z.infer<typeof httpModuleSchema>, baseDir: string): HttpModuleConfig {
  const matches = (l: z.infer<typeof headerMatch>[] = []) => l.map((x) => ({ header: x.header, regexp: x.regexp, allowMissing: x.allow_missing ?? false }));
  let caPem = "";
  const caFile = h.tls_config?.ca_file;
  if (caFile) {
    const path = isAbsolute(caFile) ? caFile : join(baseDir, caFile);
    try {
      caPem = readFileSync(path, "utf8");
    } catch (e) {
      throw new ModuleError(["tls_config", "ca_file"], `cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
    if (!caPem.includes("-----BEGIN CERTIFICATE-----")) throw new ModuleError(["tls_config", "ca_file"], `${path} holds no PEM certificate`);
  }
  return {
    method: h.method ?? "GET",
    validStatusCodes: h.valid_status_codes ?? [],
    validHttpVersions: h.valid_http_versions ?? [],
    headers: h.headers ?? {},
    body: h.body ?? "",
    noFollowRedirects: h.no_follow_redirects ?? false,
    failIfSsl: h.fail_if_ssl ?? false,
    failIfNotSsl: h.fail_if_not_ssl ?? false,
    failIfBodyMatchesRegexp: h.fail_if_body_matches_regexp ?? [],
    failIfBodyNotMatchesRegexp: h.fail_if_body_not_matches_regexp ?? [],
    failIfHeaderMatches: matches(h.fail_if_header_matches),
    failIfHeaderNotMatches: matches(h.fail_if_header_not_matches),
    timeoutMs: h.timeout ? parseDurationMs(h.timeout) : HTTP_DEFAULT_TIMEOUT_MS,
    insecureSkipVerify: h.insecure_skip_verify ?? h.tls_config?.insecure_skip_verify ?? false,
    caPem,
    serverName: h.tls_config?.server_name ?? "",
    basicAuth: h.basic_auth,
    bearerToken: h.bearer_token ?? "",
    bodySizeLimit: h.body_size_limit !== undefined ? parseBytes(h.body_size_limit)! : 0,
    preferredIpProtocol: h.preferred_ip_protocol ?? "ip4",
    ipProtocolFallback: h.ip_protocol_fallback ?? true,
  };
}

/** Converts a resolved HTTP module into its protobuf form. */
export function httpModuleProto(m: HttpModuleConfig): HttpModule {
  return create(HttpModuleSchema, {
    method: m.method, validStatusCodes: m.validStatusCodes, validHttpVersions: m.validHttpVersions, headers: m.headers, body: m.body,
    noFollowRedirects: m.noFollowRedirects, failIfSsl: m.failIfSsl, failIfNotSsl: m.failIfNotSsl,
    failIfBodyMatchesRegexp: m.failIfBodyMatchesRegexp, failIfBodyNotMatchesRegexp: m.failIfBodyNotMatchesRegexp,
    failIfHeaderMatches: m.failIfHeaderMatches, failIfHeaderNotMatches: m.failIfHeaderNotMatches,
    timeout: durationFromMs(m.timeoutMs), insecureSkipVerify: m.insecureSkipVerify,
    tlsConfig: { insecureSkipVerify: m.insecureSkipVerify, caPem: m.caPem, serverName: m.serverName },
    basicAuth: m.basicAuth, bearerToken: m.bearerToken, bodySizeLimit: BigInt(m.bodySizeLimit),
    preferredIpProtocol: m.preferredIpProtocol, ipProtocolFallback: m.ipProtocolFallback,
  });
}
