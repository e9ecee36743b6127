/**
 * Checks of the final HTTP response against the module, in blackbox_exporter's order: status
 * code, HTTP version, TLS or not, header regexps, body regexps. The first failing check decides
 * failed_reason (ProberMesh's label of prober_http_failed).
 */
import type { HttpModule } from "../../rpc/gen/probermesh/v1/http_pb.ts";
import type { FailedReason } from "./failed_reason.ts";
import type { ResponseHead } from "./response.ts";

/** A failed check: the reason label and a human-readable detail. */
export interface CheckFailure {
  reason: FailedReason;
  message: string;
}

/**
 * Checks the final response of a probe.
 * @param tlsUsed whether the final hop was HTTPS
 * @returns the first failure, or null when every check passes
 */
export function checkResponse(head: ResponseHead, body: string, tlsUsed: boolean, m: HttpModule | undefined): CheckFailure | null {
  const codes = m?.validStatusCodes ?? [];
  if (codes.length ? !codes.includes(head.status) : head.status < 200 || head.status > 299) {
    return { reason: "status_code", message: `status code ${head.status} not accepted` };
  }
  const versions = m?.validHttpVersions ?? [];
  if (versions.length && !versions.includes(head.version)) {
    return { reason: "http_version", message: `${head.version} not in valid_http_versions` };
  }
  if (m?.failIfSsl && tlsUsed) return { reason: "ssl", message: "final response came over TLS (fail_if_ssl)" };
  if (m?.failIfNotSsl && !tlsUsed) return { reason: "ssl", message: "final response came over plain HTTP (fail_if_not_ssl)" };
  for (const h of m?.failIfHeaderMatches ?? []) {
    const v = head.headers.get(h.header.toLowerCase());
    if (v !== undefined && new RegExp(h.regexp).test(v)) return { reason: "header_regexp", message: `header ${h.header} matched /${h.regexp}/` };
  }
  for (const h of m?.failIfHeaderNotMatches ?? []) {
    const v = head.headers.get(h.header.toLowerCase());
    if (v === undefined) {
      if (!h.allowMissing) return { reason: "header_regexp", message: `header ${h.header} missing` };
    } else if (!new RegExp(h.regexp).test(v)) {
      return { reason: "header_regexp", message: `header ${h.header} did not match /${h.regexp}/` };
    }
  }
  for (const re of m?.failIfBodyMatchesRegexp ?? []) {
    if (new RegExp(re).test(body)) return { reason: "body_regexp", message: `body matched /${re}/` };
  }
  for (const re of m?.failIfBodyNotMatchesRegexp ?? []) {
    if (!new RegExp(re).test(body)) return { reason: "body_regexp", message: `body did not match /${re}/` };
  }
  return null;
}

/** Request headers for a hop: defaults, the module's headers, then Authorization from basic_auth / bearer_token. */
export function requestHeaders(url: URL, m: HttpModule | undefined, userAgent: string): Record<string, string> {
  const headers: Record<string, string> = { Host: url.host, "User-Agent": userAgent, Accept: "*/*", Connection: "close" };
  for (const [k, v] of Object.entries(m?.headers ?? {})) headers[k] = v;
  if (m?.basicAuth) headers.Authorization = `Basic ${Buffer.from(`${m.basicAuth.username}:${m.basicAuth.password}`).toString("base64")}`;
  else if (m?.bearerToken) headers.Authorization = `Bearer ${m.bearerToken}`;
  return headers;
}
