/**
 * The HTTP kind's common half (lib/probes/kind.ts): the probe file's `http:` module with
 * blackbox_exporter's option names and meaning (its CONFIGURATION.md), parsed straight into the
 * protobuf HttpModule handed to agents; and HTTP target addressing (absolute http(s) URLs).
 */
import { clone, create, toJson } from "@bufbuild/protobuf";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { z } from "zod";
import { parseDurationMs } from "../../cli/duration.ts";
import { HttpModuleSchema, HttpResultSchema, HttpTargetSchema, type HttpModule } from "../../rpc/gen/probermesh/v1/http_pb.ts";
import { isHostOrIp } from "../address.ts";
import type { ProbeKind } from "../kind.ts";
import { FAILED_REASON_DOCS } from "./failed_reason.ts";
import { durationString, regexString } from "../schema_types.ts";
import { readModuleFile as readFile, redactTlsConfig, tlsConfigFrom, tlsConfigKeys, type FileReader } from "../tls.ts";
import { HTTP_DEFAULTS } from "./defaults.ts";

const UNITS: Record<string, number> = { "": 1, B: 1, KB: 1024, KIB: 1024, MB: 1024 ** 2, MIB: 1024 ** 2, GB: 1024 ** 3, GIB: 1024 ** 3 };

/** "1MB", "512KiB", "2048" or a number → bytes (base 2, as blackbox's units.Base2Bytes); null when malformed. */
export function parseBytes(v: number | string): number | null {
  if (typeof v === "number") return Number.isInteger(v) && v >= 0 ? v : null;
  const m = /^\s*(\d+)\s*([a-zA-Z]*)\s*$/.exec(v);
  const unit = m ? UNITS[m[2]!.toUpperCase()] : undefined;
  return m && unit !== undefined ? Number(m[1]) * unit : null;
}

/**
 * Normalises an HTTP target: a bare host gets `http://` (as ProberMesh did).
 * @returns the absolute URL, or null when it is not an http(s) URL with a valid host.
 */
export function normaliseHttpTarget(s: string): string | null {
  const withScheme = /^[a-zA-Z][a-zA-Z0-9+.-]*:\/\//.test(s) ? s : `http://${s}`;
  try {
    const u = new URL(withScheme);
    if (u.protocol !== "http:" && u.protocol !== "https:") return null;
    // Credentials in a URL would be shown in target_addr labels: basic_auth takes them.
    if (u.username || u.password) return null;
    return isHostOrIp(u.hostname.replace(/^\[|\]$/g, "")) ? withScheme : null;
  } catch {
    return null;
  }
}

const headerMatch = z
  .strictObject({ header: z.string().min(1, "must not be empty"), regexp: regexString, allow_missing: z.boolean().optional() })
  .describe("{header, regexp, allow_missing}")
  .transform((x) => ({ header: x.header, regexp: x.regexp, allowMissing: x.allow_missing ?? false }));

/** The `http:` keys as written in the file (snake_case, blackbox_exporter's names); docs/configuration.md lists them from here. */
export const httpKeys = z.strictObject({
  method: z.string().regex(/^[A-Z]+$/, "must be an upper-case HTTP method").optional().describe(`request method (default ${HTTP_DEFAULTS.method})`),
  valid_status_codes: z.array(z.int().min(100).max(599)).optional().describe("accepted status codes of the final response (default: any 2xx)"),
  valid_http_versions: z.array(z.string().regex(/^HTTP\/\d(\.\d)?$/, 'must look like "HTTP/1.1"')).optional().describe('accepted versions of the final response, e.g. ["HTTP/1.1"] (default: any); agents speak HTTP/1.1'),
  headers: z.record(z.string(), z.string()).optional().describe("request headers, added to Host, User-Agent, Accept and Connection: close"),
  body: z.string().optional().describe("request body"),
  no_follow_redirects: z.boolean().optional().describe("do not follow redirects (default: follow up to 10, phases summed over hops)"),
  fail_if_ssl: z.boolean().optional().describe("fail (ssl) when the final response came over TLS"),
  fail_if_not_ssl: z.boolean().optional().describe("fail (ssl) when the final response came over plain HTTP"),
  fail_if_body_matches_regexp: z.array(regexString).optional().describe("fail (body_regexp) when the body matches any of these"),
  fail_if_body_not_matches_regexp: z.array(regexString).optional().describe("fail (body_regexp) when the body does not match all of these"),
  fail_if_header_matches: z.array(headerMatch).optional().describe("fail (header_regexp) when a header matches; a missing header passes"),
  fail_if_header_not_matches: z.array(headerMatch).optional().describe("fail (header_regexp) when a header does not match, or is missing unless allow_missing"),
  timeout: durationString.optional().describe(`deadline of the whole probe, every hop included (default ${HTTP_DEFAULTS.timeoutMs / 1000}s)`),
  insecure_skip_verify: z.boolean().optional().describe("shorthand for tls_config.insecure_skip_verify"),
  tls_config: tlsConfigKeys.optional(),
  basic_auth: z
    .strictObject({ username: z.string(), password: z.string().optional(), password_file: z.string().min(1).optional() })
    .refine((b) => !(b.password !== undefined && b.password_file !== undefined), "give password or password_file, not both")
    .optional()
    .describe("{username, password | password_file}: sent as Authorization: Basic; password_file is read by the server (relative to the probe file)"),
  bearer_token: z.string().min(1).optional().describe("sent as Authorization: Bearer"),
  bearer_token_file: z.string().min(1).optional().describe("file holding the bearer token, read by the server (relative to the probe file); instead of bearer_token"),
  body_size_limit: z.union([z.int(), z.string()]).refine((v) => parseBytes(v) !== null, 'must be a byte count such as 1048576, "512KiB" or "1MB"').optional()
    .describe('fail (body_size_limit) past this many body bytes: bytes, or "512KiB", "1MB" (base 2); default none'),
  preferred_ip_protocol: z.enum(["ip4", "ip6"]).optional().describe(`address family tried first for a name (default ${HTTP_DEFAULTS.preferredIpProtocol}; blackbox_exporter defaults to ip6)`),
  ip_protocol_fallback: z.boolean().optional().describe(`use the other family when the preferred one has no address (default ${HTTP_DEFAULTS.ipProtocolFallback})`),
});

/**
 * The `http:` module schema: validates the keys, reads tls_config.ca_file (relative to `baseDir`,
 * the probe file's directory; an unreadable or non-PEM file is an issue at that key) and builds
 * the HttpModule with defaults filled in.
 */
function httpModuleSchema(baseDir: string): z.ZodType<HttpModule, unknown> {
  return httpKeys.transform((h, ctx): HttpModule => {
    const files: FileReader = { baseDir, issue: (path, message) => ctx.addIssue({ code: "custom", path, message }) };
    const readModuleFile = (file: string | undefined, at: string[]) => readFile(files, file, at);
    if (h.bearer_token !== undefined && h.bearer_token_file !== undefined) ctx.addIssue({ code: "custom", path: ["bearer_token_file"], message: "give bearer_token or bearer_token_file, not both" });
    // Secret files: one value, the trailing newline of `echo secret > file` dropped.
    const bearerToken = h.bearer_token ?? readModuleFile(h.bearer_token_file, ["bearer_token_file"]).trim();
    const password = h.basic_auth?.password ?? readModuleFile(h.basic_auth?.password_file, ["basic_auth", "password_file"]).replace(/\r?\n$/, "");
    const insecure = h.insecure_skip_verify ?? h.tls_config?.insecure_skip_verify ?? false;
    return create(HttpModuleSchema, {
      method: h.method ?? HTTP_DEFAULTS.method,
      validStatusCodes: h.valid_status_codes ?? [],
      validHttpVersions: h.valid_http_versions ?? [],
      headers: h.headers ?? {},
      body: h.body ?? "",
      noFollowRedirects: h.no_follow_redirects ?? false,
      failIfSsl: h.fail_if_ssl ?? false,
      failIfNotSsl: h.fail_if_not_ssl ?? false,
      failIfBodyMatchesRegexp: h.fail_if_body_matches_regexp ?? [],
      failIfBodyNotMatchesRegexp: h.fail_if_body_not_matches_regexp ?? [],
      failIfHeaderMatches: h.fail_if_header_matches ?? [],
      failIfHeaderNotMatches: h.fail_if_header_not_matches ?? [],
      timeout: durationFromMs(h.timeout ? parseDurationMs(h.timeout) : HTTP_DEFAULTS.timeoutMs),
      // Field 9 is kept in step with tls_config for agents of 0.1, which read only field 9.
      insecureSkipVerify: insecure,
      tlsConfig: tlsConfigFrom(h.tls_config, files, ["tls_config"], insecure),
      basicAuth: h.basic_auth ? { username: h.basic_auth.username, password } : undefined,
      bearerToken,
      bodySizeLimit: BigInt(h.body_size_limit !== undefined ? parseBytes(h.body_size_limit)! : 0),
      preferredIpProtocol: h.preferred_ip_protocol ?? HTTP_DEFAULTS.preferredIpProtocol,
      ipProtocolFallback: h.ip_protocol_fallback ?? HTTP_DEFAULTS.ipProtocolFallback,
    });
  });
}

/** Request headers whose values are credentials (compared case-insensitively). */
const SECRET_HEADERS = new Set(["authorization", "proxy-authorization", "cookie", "x-api-key", "x-auth-token"]);

/** A copy of `m` with bearer_token, basic_auth.password and credential headers replaced by `placeholder`. */
export function redactHttpModule(m: HttpModule, placeholder: string): HttpModule {
  const r = clone(HttpModuleSchema, m);
  if (r.bearerToken) r.bearerToken = placeholder;
  if (r.basicAuth?.password) r.basicAuth.password = placeholder;
  redactTlsConfig(r.tlsConfig, placeholder);
  for (const k of Object.keys(r.headers)) if (SECRET_HEADERS.has(k.toLowerCase())) r.headers[k] = placeholder;
  return r;
}

export const httpKind: ProbeKind<"http"> = {
  type: "http",
  resultSchema: HttpResultSchema,
  keys: httpKeys,
  failedReasons: FAILED_REASON_DOCS,
  moduleSchema: httpModuleSchema,
  defaultModule: () => httpModuleSchema("/").parse({}),
  normaliseTarget: normaliseHttpTarget,
  targetDescription: "http(s) URL",
  target: (targetRegion, url, module) => create(HttpTargetSchema, { targetRegion, url, module }),
  moduleJson: (m) => toJson(HttpModuleSchema, m),
  redactModule: redactHttpModule,
  addressOf: (t) => t.url,
};
