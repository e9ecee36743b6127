/**
 * The `http:` module's keys as written in the probe file: blackbox_exporter's <http_probe>
 * (CONFIGURATION.md, config/config.go at e39d7d4) with Prometheus common config's http_config
 * inlined (basic_auth, authorization, oauth2, bearer_token, tls_config, follow_redirects,
 * enable_http2, proxy settings, http_headers; prometheus/common config/http_config.go v0.70.0).
 * One zod schema per key with its description: docs/kinds/http.md's table is generated from it.
 * Cross-key rules (exclusive keys, blackbox's and common config's messages) are in module.ts.
 */
import { z } from "zod";
import { durationString } from "../schema_types.ts";
import { tlsConfigKeys } from "../tls.ts";
import { BODY_CHECK_DEFAULT_BYTES, HTTP_DEFAULTS } from "./defaults.ts";
import { goRegexpError } from "../regexp.ts";

const UNITS: Record<string, number> = { "": 1, B: 1, KB: 1024, KIB: 1024, MB: 1024 ** 2, MIB: 1024 ** 2, GB: 1024 ** 3, GIB: 1024 ** 3 };

/** "1MB", "512KiB", "2048" or a number → bytes (base 2, as blackbox's units.Base2Bytes); null when malformed. */
export function parseBytes(v: number | string): number | null {
  if (typeof v === "number") return Number.isInteger(v) && v >= 0 ? v : null;
  const m = /^\s*(\d+)\s*([a-zA-Z]*)\s*$/.exec(v);
  const unit = m ? UNITS[m[2]!.toUpperCase()] : undefined;
  return m && unit !== undefined ? Number(m[1]) * unit : null;
}

/** A regular expression in RE2 (Go) syntax as blackbox's (lib/probes/regexp.ts), refused with blackbox's message when it does not compile or cannot be translated. */
export const httpRegexp = z.string().superRefine((s, ctx) => {
  const err = goRegexpError(s);
  if (err) ctx.addIssue({ code: "custom", message: `"Could not compile regular expression" regexp="${s}": ${err}` });
});

/** blackbox's <http_header_match_spec>; its own checks are blackbox's (header and regexp must be set). */
const headerMatch = z
  .strictObject({ header: z.string().optional(), regexp: httpRegexp.optional(), allow_missing: z.boolean().optional() })
  .superRefine((x, ctx) => {
    if (!x.header) ctx.addIssue({ code: "custom", path: ["header"], message: "header name must be set for HTTP header matchers" });
    if (!x.regexp) ctx.addIssue({ code: "custom", path: ["regexp"], message: "regexp must be set for HTTP header matchers" });
  })
  .describe("{header, regexp, allow_missing}");

/** A key of Prometheus common config that reads a secret from a secret manager, which neither blackbox_exporter nor ProberMesh has. */
const secretRef = z.string().optional().describe("not supported: needs a secret manager (blackbox_exporter has none either and fails every probe)");

/** Prometheus common config's proxy keys (ProxyConfig), in the module and in oauth2. */
export const proxyKeys = {
  proxy_url: z.string().min(1).optional().describe("proxy for the requests: http://, https:// or socks5:// URL (user:password in it is sent to the proxy as Proxy-Authorization / SOCKS5 credentials)"),
  no_proxy: z.string().optional().describe("comma-separated hosts, domains (.example.com), IPs and CIDRs that go direct (Go's NO_PROXY syntax; with it, localhost and loopback addresses go direct too, as in Go); needs proxy_url"),
  proxy_from_environment: z.boolean().optional().describe("use the agent's HTTP_PROXY / HTTPS_PROXY / NO_PROXY environment (by the target's scheme, as Go's httpproxy.FromEnvironment)"),
  proxy_connect_header: z.record(z.string(), z.array(z.string())).optional().describe("headers sent to the proxy with CONNECT (https targets), name -> [values]; secrets"),
};

const oauth2Keys = z
  .strictObject({
    client_id: z.string().optional(),
    client_secret: z.string().optional(),
    client_secret_file: z.string().min(1).optional(),
    client_secret_ref: secretRef,
    scopes: z.array(z.string()).optional(),
    token_url: z.string().optional(),
    endpoint_params: z.record(z.string(), z.string()).optional(),
    tls_config: tlsConfigKeys.optional(),
    grant_type: z.string().optional(),
    client_certificate_key_id: z.string().optional(),
    client_certificate_key: z.string().optional(),
    client_certificate_key_file: z.string().optional(),
    client_certificate_key_ref: z.string().optional(),
    signature_algorithm: z.string().optional(),
    iss: z.string().optional(),
    audience: z.string().optional(),
    claims: z.record(z.string(), z.unknown()).optional(),
    ...proxyKeys,
  })
  .describe("{client_id, client_secret | client_secret_file, scopes, token_url, endpoint_params, tls_config, proxy_url, no_proxy, proxy_from_environment, proxy_connect_header}: OAuth 2.0 client credentials; the agent fetches a token from token_url, keeps it until it expires, and sends it as Authorization. grant_type jwt-bearer is not supported");

/** The `http:` keys as written in the file (snake_case, blackbox_exporter's names). */
export const httpKeys = z.strictObject({
  method: z.string().regex(/^[A-Z]+$/, "must be an upper-case HTTP method").optional().describe(`request method (default ${HTTP_DEFAULTS.method})`),
  valid_status_codes: z.array(z.int().min(100).max(599)).optional().describe("accepted status codes of the final response (default: any 2xx)"),
  valid_http_versions: z.array(z.string().regex(/^HTTP\/\d(\.\d)?$/, 'must look like "HTTP/1.1"')).optional().describe('accepted versions of the final response: "HTTP/1.0", "HTTP/1.1", "HTTP/2.0" (default: any)'),
  headers: z.record(z.string(), z.string()).optional().describe("request headers (Host sets the Host header and the TLS server name); Authorization here wins over basic_auth / authorization / bearer_token"),
  http_headers: z
    .record(z.string(), z.strictObject({ values: z.array(z.string()).optional(), secrets: z.array(z.string()).optional(), files: z.array(z.string().min(1)).optional() }))
    .optional()
    .describe("more request headers, name -> {values, secrets, files}: every value is added; files are read by the server (relative to the probe file); secrets and files are hidden in the server's views and not sent after a redirect to another host"),
  body: z.string().optional().describe("request body"),
  body_file: z.string().min(1).optional().describe("file holding the request body, read by the server (relative to the probe file); instead of body"),
  compression: z.string().optional().describe('decode the body as gzip, br, deflate or identity (and send Accept-Encoding with it unless headers has one); default "": none'),
  follow_redirects: z.boolean().optional().describe("follow redirects, at most 10, phases summed over hops (default true)"),
  no_follow_redirects: z.boolean().optional().describe("deprecated name: no_follow_redirects: true is follow_redirects: false"),
  fail_if_ssl: z.boolean().optional().describe("fail (ssl) when the final response came over TLS"),
  fail_if_not_ssl: z.boolean().optional().describe("fail (ssl) when the final response came over plain HTTP"),
  fail_if_body_matches_regexp: z.array(httpRegexp).optional().describe("fail (body_regexp) when the body matches any of these"),
  fail_if_body_not_matches_regexp: z.array(httpRegexp).optional().describe("fail (body_regexp) when the body does not match all of these"),
  fail_if_body_json_matches_cel: z.string().optional().describe("fail (body_cel) when this CEL expression over the body parsed as JSON (variable body) gives true, or the body is not JSON"),
  fail_if_body_json_not_matches_cel: z.string().optional().describe("fail (body_cel) when this CEL expression over the body parsed as JSON gives false, or the body is not JSON"),
  fail_if_header_matches: z.array(headerMatch).optional().describe("fail (header_regexp) when a value of the header matches, or the header is missing unless allow_missing"),
  fail_if_header_not_matches: z.array(headerMatch).optional().describe("fail (header_regexp) when no value of the header matches, or the header is missing unless allow_missing"),
  timeout: durationString.optional().describe(`deadline of the whole probe, every hop and the OAuth2 token request included (default ${HTTP_DEFAULTS.timeoutMs / 1000}s)`),
  insecure_skip_verify: z.boolean().optional().describe("ProberMesh's shorthand for tls_config.insecure_skip_verify"),
  tls_config: tlsConfigKeys.optional(),
  basic_auth: z
    .strictObject({ username: z.string().optional(), username_file: z.string().min(1).optional(), username_ref: secretRef, password: z.string().optional(), password_file: z.string().min(1).optional(), password_ref: secretRef })
    .optional()
    .describe("{username | username_file, password | password_file}: sent as Authorization: Basic; files are read by the server (relative to the probe file)"),
  authorization: z
    .strictObject({ type: z.string().optional(), credentials: z.string().optional(), credentials_file: z.string().min(1).optional(), credentials_ref: secretRef })
    .optional()
    .describe("{type (default Bearer), credentials | credentials_file}: sent as Authorization: <type> <credentials>"),
  bearer_token: z.string().min(1).optional().describe("sent as Authorization: Bearer (common config's older form of authorization)"),
  bearer_token_file: z.string().min(1).optional().describe("file holding the bearer token, read by the server (relative to the probe file); instead of bearer_token"),
  oauth2: oauth2Keys.optional(),
  ...proxyKeys,
  skip_resolve_phase_with_proxy: z.boolean().optional().describe("with a proxy, do not resolve the target's name (resolve phase 0): the proxy gets the name"),
  enable_http2: z.boolean().optional().describe('offer HTTP/2 by ALPN on TLS connections (default true); "HTTP/2.0" is then the http_version of an h2 answer. Plain http stays HTTP/1.1 (as Go)'),
  enable_http3: z.boolean().optional().describe("not supported: only false is accepted (HTTP/3 needs a QUIC client, which Bun does not have)"),
  body_size_limit: z.union([z.int(), z.string()]).refine((v) => parseBytes(v) !== null, 'must be a byte count such as 1048576, "512KiB" or "1MB"').optional()
    .describe(`fail (body_size_limit) past this many body bytes, counted after decoding compression: bytes, or "512KiB", "1MB" (base 2); default none (body checks keep at most ${BODY_CHECK_DEFAULT_BYTES / 2 ** 20} MiB)`),
  preferred_ip_protocol: z.enum(["ip4", "ip6"]).optional().describe(`address family tried first for a name (default ${HTTP_DEFAULTS.preferredIpProtocol}; blackbox_exporter defaults to ip6)`),
  ip_protocol_fallback: z.boolean().optional().describe(`use the other family when the preferred one has no address (default ${HTTP_DEFAULTS.ipProtocolFallback})`),
});

/** The keys as parsed. */
export type HttpKeys = z.infer<typeof httpKeys>;
/** The oauth2 keys as parsed. */
export type OAuth2Keys = z.infer<typeof oauth2Keys>;
