/**
 * The `http:` module schema: the keys of keys.ts, checked as blackbox_exporter (HTTPProbe's
 * UnmarshalYAML) and Prometheus common config (HTTPClientConfig.Validate, ProxyConfig.Validate,
 * Headers.Validate) check them, with their messages, each issue at the offending key; files named
 * by the module are read here, by the server, relative to the probe file. The result is the
 * protobuf HttpModule agents receive, every default filled in.
 */
import { readFileSync } from "node:fs";
import { isAbsolute, join } from "node:path";
import { create } from "@bufbuild/protobuf";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { z } from "zod";
import { parseDurationMs } from "../../cli/duration.ts";
import { HttpModuleSchema, type HttpHeaderValues, type HttpModule, type HttpProxy } from "../../rpc/gen/probermesh/v1/http_pb.ts";
import { readModuleFile, tlsConfigFrom, type FileReader } from "../tls.ts";
import { celProblem } from "./cel.ts";
import { HTTP_DEFAULTS } from "./defaults.ts";
import { httpKeys, parseBytes, proxyKeys, type HttpKeys } from "./keys.ts";

type Path = (string | number)[];
type ProxyKeys = { [K in keyof typeof proxyKeys]?: z.infer<(typeof proxyKeys)[K]> };

/** Content codings `compression` decodes (blackbox's getDecompressionReader). */
export const COMPRESSIONS = ["gzip", "br", "deflate", "identity"] as const;

/**
 * Request headers http_headers may not set (Prometheus common config's ReservedHeaders): the
 * client sets them, or another key does.
 */
const RESERVED_HEADERS = new Set(
  ["Authorization", "Host", "Content-Encoding", "Content-Length", "Content-Type", "User-Agent", "Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization", "Www-Authenticate", "Accept-Encoding", "X-Prometheus-Remote-Write-Version", "X-Prometheus-Remote-Read-Version", "X-Prometheus-Scrape-Timeout-Seconds", "X-Amz-Date", "X-Amz-Security-Token", "X-Amz-Content-Sha256"].map((h) => h.toLowerCase()),
);

/** Go's textproto.CanonicalMIMEHeaderKey for the common case ("accEpt-enCoding" -> "Accept-Encoding"). */
export const canonicalHeader = (k: string) => k.toLowerCase().replace(/(^|-)([a-z])/g, (_, d: string, c: string) => d + c.toUpperCase());

/**
 * blackbox's isCompressionAcceptEncodingValid: `compression` must be acceptable in the
 * Accept-Encoding the module sends (listed, or `*`, with the highest matching quality above 0).
 */
export function compressionAccepted(encoding: string, acceptEncoding: string): boolean {
  if (encoding === "" || acceptEncoding === "") return true;
  const parts = acceptEncoding.split(",").map((p) => {
    const i = p.lastIndexOf(";");
    if (i < 0) return { encoding: p.trim(), q: 1 };
    const q = Number(p.slice(i + 1).trim().replace(/^q=/, ""));
    return { encoding: p.slice(0, i).trim(), q: Number.isFinite(q) ? Math.round(q * 1000) / 1000 : 0 };
  });
  // Go's sort.SliceStable by descending quality.
  const sorted = parts.map((p, i) => ({ ...p, i })).sort((a, b) => b.q - a.q || a.i - b.i);
  const hit = sorted.find((e) => e.encoding === encoding || e.encoding === "*");
  return hit ? hit.q > 0 : false;
}

/** Proxy URL schemes the agents speak (Go's Transport: http, https, socks5, socks5h). */
const PROXY_SCHEMES = ["http:", "https:", "socks5:", "socks5h:"];

/** ProxyConfig.Validate's rules and the proxy URL itself; @returns the protobuf form, or undefined without a proxy. */
function proxyFrom(p: ProxyKeys, at: Path, issue: FileReader["issue"]): HttpProxy | undefined {
  const hasUrl = p.proxy_url !== undefined && p.proxy_url !== "";
  if (p.proxy_connect_header && Object.keys(p.proxy_connect_header).length > 0 && !p.proxy_from_environment && !hasUrl) issue([...at, "proxy_connect_header"], "if proxy_connect_header is configured, proxy_url or proxy_from_environment must also be configured");
  if (p.proxy_from_environment && hasUrl) issue([...at, "proxy_url"], "if proxy_from_environment is configured, proxy_url must not be configured");
  if (p.proxy_from_environment && p.no_proxy) issue([...at, "no_proxy"], "if proxy_from_environment is configured, no_proxy must not be configured");
  if (!hasUrl && p.no_proxy) issue([...at, "no_proxy"], "if no_proxy is configured, proxy_url must also be configured");
  if (hasUrl) {
    const withScheme = /^[a-zA-Z][a-zA-Z0-9+.-]*:\/\//.test(p.proxy_url!) ? p.proxy_url! : `http://${p.proxy_url}`;
    let u: URL | undefined;
    try {
      u = new URL(withScheme);
    } catch {
      issue([...at, "proxy_url"], `invalid proxy URL "${p.proxy_url}"`);
    }
    if (u && !PROXY_SCHEMES.includes(u.protocol)) issue([...at, "proxy_url"], `proxy scheme ${u.protocol.slice(0, -1)} is not supported (http, https, socks5)`);
  }
  if (!hasUrl && !p.proxy_from_environment) return undefined;
  const connect: Record<string, HttpHeaderValues> = {};
  for (const [k, v] of Object.entries(p.proxy_connect_header ?? {})) connect[k] = { $typeName: "probermesh.v1.HttpHeaderValues", values: [], secrets: v };
  return { $typeName: "probermesh.v1.HttpProxy", proxyUrl: p.proxy_url ?? "", noProxy: p.no_proxy ?? "", proxyFromEnvironment: p.proxy_from_environment ?? false, proxyConnectHeader: connect };
}

/** A secret given inline or as a file (exclusive; read here): the value, "" when neither. */
function secret(r: FileReader, inline: string | undefined, file: string | undefined, at: Path, message: string, trim: (s: string) => string): string {
  if (inline && file) r.issue(at, message);
  return inline || trim(readModuleFile(r, file, at));
}

/** `echo secret > file` leaves a newline: common config's file secrets are trimmed of surrounding space. */
const trimmed = (s: string) => s.trim();

/** Prometheus common config's authentication rules (HTTPClientConfig.Validate), each at its key. */
function authChecks(h: HttpKeys, issue: FileReader["issue"]): void {
  const bearer = !!h.bearer_token || !!h.bearer_token_file;
  if (h.bearer_token && h.bearer_token_file) issue(["bearer_token_file"], "at most one of bearer_token & bearer_token_file must be configured");
  if ((h.basic_auth || h.oauth2) && bearer) issue([h.bearer_token ? "bearer_token" : "bearer_token_file"], "at most one of basic_auth, oauth2, bearer_token & bearer_token_file must be configured");
  if (h.authorization) {
    if (bearer) issue(["authorization"], "authorization is not compatible with bearer_token & bearer_token_file");
    if ((h.authorization.type ?? "").trim().toLowerCase() === "basic") issue(["authorization", "type"], 'authorization type cannot be set to "basic", use "basic_auth" instead');
    if (h.basic_auth || h.oauth2) issue(["authorization"], "at most one of basic_auth, oauth2 & authorization must be configured");
  }
  if (h.oauth2 && h.basic_auth) issue(["oauth2"], "at most one of basic_auth, oauth2 & authorization must be configured");
  const refs: [unknown, Path][] = [[h.basic_auth?.username_ref, ["basic_auth", "username_ref"]], [h.basic_auth?.password_ref, ["basic_auth", "password_ref"]], [h.authorization?.credentials_ref, ["authorization", "credentials_ref"]], [h.oauth2?.client_secret_ref, ["oauth2", "client_secret_ref"]]];
  for (const [v, at] of refs) if (v) issue(at, `${at.at(-1)} is not supported: it names a secret in a secret manager, which blackbox_exporter has none of either (it fails every probe with "cannot use secret ref without manager")`);
}

/** blackbox's HTTP/3 rules, then ProberMesh's refusal of enable_http3: true. */
function http3Checks(h: HttpKeys, issue: FileReader["issue"]): void {
  const versions = h.valid_http_versions ?? [];
  if (!h.enable_http3) {
    if (versions.includes("HTTP/3.0")) issue(["valid_http_versions"], "HTTP/3 cannot be used as a valid HTTP version when enable_http3 is false");
    return;
  }
  if (versions.includes("HTTP/2.0") || versions.includes("HTTP/1.1")) issue(["valid_http_versions"], "HTTP/3 and HTTP/2.0/1.1 cannot be used together - only HTTP/3.0 is allowed when enable_http3 is true");
  if (h.enable_http2 ?? HTTP_DEFAULTS.enableHttp2) issue([h.enable_http2 === undefined ? "enable_http3" : "enable_http2"], "when enable_http3 is true, enable_http2 must be set to false");
  issue(["enable_http3"], "enable_http3: true is not supported: HTTP/3 runs over QUIC, and Bun (the agents' runtime) has no QUIC client; agents probe over HTTP/1.1 and HTTP/2");
}

/** oauth2's rules (client_id, token_url, secret exclusivity, grant type, endpoint params) and its protobuf form. */
function oauth2From(h: HttpKeys, r: FileReader): HttpModule["oauth2"] {
  const o = h.oauth2;
  if (!o) return undefined;
  const at = ["oauth2"];
  if (!o.client_id) r.issue([...at, "client_id"], "oauth2 client_id must be configured");
  if (!o.token_url) r.issue([...at, "token_url"], "oauth2 token_url must be configured");
  else {
    try {
      const u = new URL(o.token_url);
      if (u.protocol !== "http:" && u.protocol !== "https:") throw new Error();
    } catch {
      r.issue([...at, "token_url"], `oauth2 token_url "${o.token_url}" is not an http(s) URL`);
    }
  }
  const jwtKeys = (["client_certificate_key_id", "client_certificate_key", "client_certificate_key_file", "client_certificate_key_ref", "signature_algorithm", "iss", "audience", "claims"] as const).filter((k) => o[k] !== undefined);
  if (o.grant_type !== undefined && o.grant_type !== "client_credentials") r.issue([...at, "grant_type"], `grant_type ${o.grant_type} is not supported: agents implement client_credentials only`);
  for (const k of jwtKeys) r.issue([...at, k], `${k} belongs to grant_type urn:ietf:params:oauth:grant-type:jwt-bearer, which is not supported: agents implement client_credentials only`);
  // golang.org/x/oauth2's clientcredentials refuses endpoint params that overwrite its own (grant_type excepted).
  if (o.scopes?.length && o.endpoint_params && "scope" in o.endpoint_params) r.issue([...at, "endpoint_params", "scope"], 'oauth2: cannot overwrite parameter "scope"');
  const clientSecret = secret(r, o.client_secret, o.client_secret_file, [...at, "client_secret_file"], "at most one of oauth2 client_secret, client_secret_file & client_secret_ref must be configured using grant-type=client_credentials", trimmed);
  return {
    $typeName: "probermesh.v1.HttpOAuth2",
    clientId: o.client_id ?? "",
    clientSecret,
    scopes: o.scopes ?? [],
    tokenUrl: o.token_url ?? "",
    endpointParams: o.endpoint_params ?? {},
    tlsConfig: tlsConfigFrom(o.tls_config, r, [...at, "tls_config"]),
    proxy: proxyFrom(o, at, r.issue),
  };
}

/** http_headers: reserved names refused (common config's message), files read; @returns the protobuf map. */
function httpHeadersFrom(h: HttpKeys, r: FileReader): Record<string, HttpHeaderValues> {
  const out: Record<string, HttpHeaderValues> = {};
  for (const [name, v] of Object.entries(h.http_headers ?? {})) {
    if (RESERVED_HEADERS.has(name.toLowerCase())) r.issue(["http_headers", name], `setting header "${canonicalHeader(name)}" is not allowed`);
    const files = (v.files ?? []).map((f, i) => readModuleFile(r, f, ["http_headers", name, "files", i]).trim());
    out[name] = { $typeName: "probermesh.v1.HttpHeaderValues", values: v.values ?? [], secrets: [...(v.secrets ?? []), ...files] };
  }
  return out;
}

/** The request body: body, or body_file's content (exclusive, blackbox's message). */
function bodyFrom(h: HttpKeys, r: FileReader): { body: string; bodyBytes: Uint8Array } {
  if (h.body && h.body_file) r.issue(["body_file"], "setting body and body_file both are not allowed");
  if (!h.body_file) return { body: h.body ?? "", bodyBytes: new Uint8Array() };
  const path = isAbsolute(h.body_file) ? h.body_file : join(r.baseDir, h.body_file);
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    r.issue(["body_file"], `cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    return { body: "", bodyBytes: new Uint8Array() };
  }
  // UTF-8 text goes in body, which agents of 0.4 send too; other bytes only in body_bytes.
  const text = new TextDecoder("utf-8", { fatal: false }).decode(bytes);
  return Buffer.from(text, "utf8").equals(bytes) ? { body: text, bodyBytes: new Uint8Array() } : { body: "", bodyBytes: new Uint8Array(bytes) };
}

/**
 * The `http:` module schema for a probe file in `baseDir`: validates as described above and builds
 * the HttpModule with defaults filled in.
 */
export function httpModuleSchema(baseDir: string): z.ZodType<HttpModule, unknown> {
  return httpKeys.transform((h, ctx): HttpModule => {
    const r: FileReader = { baseDir, issue: (path, message) => ctx.addIssue({ code: "custom", path, message }) };
    authChecks(h, r.issue);
    http3Checks(h, r.issue);
    if (h.follow_redirects !== undefined && h.no_follow_redirects !== undefined && h.follow_redirects === h.no_follow_redirects) {
      r.issue(["no_follow_redirects"], `no_follow_redirects: ${h.no_follow_redirects} contradicts follow_redirects: ${h.follow_redirects} (no_follow_redirects is the deprecated name; give follow_redirects only)`);
    }
    const compression = (h.compression ?? "").toLowerCase();
    if (compression && !(COMPRESSIONS as readonly string[]).includes(compression)) r.issue(["compression"], `unsupported compression algorithm "${h.compression}" (gzip, br, deflate, identity)`);
    for (const [k, v] of Object.entries(h.headers ?? {})) {
      if (canonicalHeader(k) === "Accept-Encoding" && !compressionAccepted(h.compression ?? "", v)) r.issue(["headers", k], `invalid configuration "${k}: ${v}", "compression: ${h.compression}"`);
    }
    for (const key of ["fail_if_body_json_matches_cel", "fail_if_body_json_not_matches_cel"] as const) {
      const expr = h[key];
      const problem = expr === undefined ? null : celProblem(expr);
      if (problem) r.issue([key], `"Could not compile CEL program" expression="${expr}": ${problem}`);
    }
    const bearerToken = secret(r, h.bearer_token, h.bearer_token_file, ["bearer_token_file"], "at most one of bearer_token & bearer_token_file must be configured", trimmed);
    const ba = h.basic_auth;
    const username = ba ? secret(r, ba.username, ba.username_file, ["basic_auth", "username_file"], "at most one of basic_auth username, username_file & username_ref must be configured", trimmed) : "";
    const password = ba ? secret(r, ba.password, ba.password_file, ["basic_auth", "password_file"], "at most one of basic_auth password, password_file & password_ref must be configured", trimmed) : "";
    const az = h.authorization;
    const authType = (az?.type ?? "").trim() || "Bearer";
    const credentials = az ? secret(r, az.credentials, az.credentials_file, ["authorization", "credentials_file"], "at most one of authorization credentials & credentials_file must be configured", trimmed) : "";
    const insecure = h.insecure_skip_verify ?? h.tls_config?.insecure_skip_verify ?? false;
    const follow = h.no_follow_redirects !== undefined ? !h.no_follow_redirects : (h.follow_redirects ?? HTTP_DEFAULTS.followRedirects);
    const { body, bodyBytes } = bodyFrom(h, r);
    return create(HttpModuleSchema, {
      method: h.method ?? HTTP_DEFAULTS.method,
      validStatusCodes: h.valid_status_codes ?? [],
      validHttpVersions: h.valid_http_versions ?? [],
      headers: h.headers ?? {},
      body,
      bodyBytes,
      noFollowRedirects: !follow,
      failIfSsl: h.fail_if_ssl ?? false,
      failIfNotSsl: h.fail_if_not_ssl ?? false,
      failIfBodyMatchesRegexp: h.fail_if_body_matches_regexp ?? [],
      failIfBodyNotMatchesRegexp: h.fail_if_body_not_matches_regexp ?? [],
      failIfBodyJsonMatchesCel: h.fail_if_body_json_matches_cel ?? "",
      failIfBodyJsonNotMatchesCel: h.fail_if_body_json_not_matches_cel ?? "",
      failIfHeaderMatches: (h.fail_if_header_matches ?? []).map((x) => ({ header: x.header ?? "", regexp: x.regexp ?? "", allowMissing: x.allow_missing ?? false })),
      failIfHeaderNotMatches: (h.fail_if_header_not_matches ?? []).map((x) => ({ header: x.header ?? "", regexp: x.regexp ?? "", allowMissing: x.allow_missing ?? false })),
      timeout: durationFromMs(h.timeout ? parseDurationMs(h.timeout) : HTTP_DEFAULTS.timeoutMs),
      // Field 9 is kept in step with tls_config for agents of 0.1, which read only field 9.
      insecureSkipVerify: insecure,
      tlsConfig: tlsConfigFrom(h.tls_config, r, ["tls_config"], insecure),
      basicAuth: ba ? { username, password } : undefined,
      // Bearer credentials (bearer_token, or authorization of type Bearer) in field 17, which agents of 0.4 send too.
      bearerToken: az ? (authType === "Bearer" ? credentials : "") : bearerToken,
      authorization: az && authType !== "Bearer" ? { type: authType, credentials } : undefined,
      oauth2: oauth2From(h, r),
      httpHeaders: httpHeadersFrom(h, r),
      proxy: proxyFrom(h, [], r.issue),
      skipResolvePhaseWithProxy: h.skip_resolve_phase_with_proxy ?? false,
      enableHttp2: h.enable_http2 ?? HTTP_DEFAULTS.enableHttp2,
      compression,
      bodySizeLimit: BigInt(h.body_size_limit !== undefined ? parseBytes(h.body_size_limit)! : 0),
      preferredIpProtocol: h.preferred_ip_protocol ?? HTTP_DEFAULTS.preferredIpProtocol,
      ipProtocolFallback: h.ip_protocol_fallback ?? HTTP_DEFAULTS.ipProtocolFallback,
    });
  });
}
