/**
 * The HTTP kind's common half (lib/probes/kind.ts): the probe file's `http:` module with
 * blackbox_exporter's option names and meaning (its CONFIGURATION.md), parsed straight into the
 * protobuf HttpModule handed to agents; and HTTP target addressing (absolute http(s) URLs).
 */
import { clone, create, toJson } from "@bufbuild/protobuf";
import { HttpModuleSchema, HttpResultSchema, HttpTargetSchema, type HttpHeaderValues, type HttpModule, type HttpProxy } from "../../rpc/gen/probermesh/v1/http_pb.ts";
import { isHostOrIp } from "../address.ts";
import type { ProbeKind } from "../kind.ts";
import { redactTlsConfig } from "../tls.ts";
import { FAILED_REASON_DOCS } from "./failed_reason.ts";
import { httpKeys } from "./keys.ts";
import { httpModuleSchema } from "./module.ts";

export { httpKeys, parseBytes } from "./keys.ts";

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

/** Request headers whose values are credentials (compared case-insensitively). */
const SECRET_HEADERS = new Set(["authorization", "proxy-authorization", "cookie", "x-api-key", "x-auth-token"]);

/** Secret values of a header map (http_headers, proxy_connect_header) replaced in place. */
function redactValues(h: Record<string, HttpHeaderValues>, placeholder: string): void {
  for (const v of Object.values(h)) v.secrets = v.secrets.map(() => placeholder);
}

/** The proxy URL's password and the CONNECT headers replaced in place. */
function redactProxy(p: HttpProxy | undefined, placeholder: string): void {
  if (!p) return;
  redactValues(p.proxyConnectHeader, placeholder);
  // scheme://user:password@host: the password (percent-encoded in a URL, so without @ or /).
  p.proxyUrl = p.proxyUrl.replace(/^((?:[a-zA-Z][a-zA-Z0-9+.-]*:\/\/)?[^:@/]*):[^@/]*@/, (_, user: string) => `${user}:${placeholder}@`);
}

/**
 * A copy of `m` with every secret replaced by `placeholder`: bearer_token, basic_auth.password,
 * authorization.credentials, oauth2.client_secret, credential headers, http_headers' secrets and
 * files, proxy_connect_header, proxy passwords and client keys.
 */
export function redactHttpModule(m: HttpModule, placeholder: string): HttpModule {
  const r = clone(HttpModuleSchema, m);
  if (r.bearerToken) r.bearerToken = placeholder;
  if (r.basicAuth?.password) r.basicAuth.password = placeholder;
  if (r.authorization?.credentials) r.authorization.credentials = placeholder;
  if (r.oauth2) {
    if (r.oauth2.clientSecret) r.oauth2.clientSecret = placeholder;
    redactTlsConfig(r.oauth2.tlsConfig, placeholder);
    redactProxy(r.oauth2.proxy, placeholder);
  }
  redactTlsConfig(r.tlsConfig, placeholder);
  redactValues(r.httpHeaders, placeholder);
  redactProxy(r.proxy, placeholder);
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
