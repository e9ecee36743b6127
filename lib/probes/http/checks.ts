/**
 * Checks of the final HTTP response against the module (blackbox_exporter's prober/http.go):
 * status code, HTTP version, TLS or not, header regexps, body regexps, body CEL. The first failing
 * check decides failed_reason (ProberMesh's label of prober_http_failed).
 */
import type { HttpModule } from "../../rpc/gen/probermesh/v1/http_pb.ts";
import { celProgram, jsonForCel } from "./cel.ts";
import { BODY_CHECK_DEFAULT_BYTES } from "./defaults.ts";
import type { FailedReason } from "./failed_reason.ts";
import type { ResponseHead } from "./response.ts";
import { goRegexp } from "../regexp.ts";

/** A failed check: the reason label and a human-readable detail. */
export interface CheckFailure {
  reason: FailedReason;
  message: string;
}

/** The body as the checks see it. */
export interface CheckedBody {
  /** The kept bytes (all of the body unless truncated). */
  bytes: Buffer;
  /** More came than was kept (defaults.ts BODY_CHECK_DEFAULT_BYTES without body_size_limit). */
  truncated: boolean;
}

/** Whether the module checks the body (then the prober keeps it). */
export const checksBody = (m: HttpModule | undefined): boolean =>
  !!m && (m.failIfBodyMatchesRegexp.length > 0 || m.failIfBodyNotMatchesRegexp.length > 0 || m.failIfBodyJsonMatchesCel !== "" || m.failIfBodyJsonNotMatchesCel !== "");

/**
 * blackbox's matchRegularExpressionsOnHeaders: a missing header fails either list unless
 * allow_missing; fail_if_header_matches fails when any value matches, fail_if_header_not_matches
 * when none does.
 */
function checkHeaders(head: ResponseHead, m: HttpModule): CheckFailure | null {
  for (const [list, failWhenMatched] of [[m.failIfHeaderMatches, true], [m.failIfHeaderNotMatches, false]] as const) {
    for (const h of list) {
      const values = head.headers.get(h.header.toLowerCase()) ?? [];
      if (values.length === 0) {
        if (!h.allowMissing) return { reason: "header_regexp", message: `header ${h.header} missing` };
        continue;
      }
      const re = goRegexp(h.regexp);
      const matched = values.some((v) => re.test(v));
      if (failWhenMatched && matched) return { reason: "header_regexp", message: `header ${h.header} matched /${h.regexp}/` };
      if (!failWhenMatched && !matched) return { reason: "header_regexp", message: `header ${h.header} did not match /${h.regexp}/` };
    }
  }
  return null;
}

/** blackbox's matchCELExpressions: the body must be JSON; each expression must give a boolean. */
function checkCel(text: string, m: HttpModule): CheckFailure | null {
  let json: unknown;
  try {
    json = jsonForCel(JSON.parse(text));
  } catch (e) {
    return { reason: "body_cel", message: `body is not JSON: ${(e as Error).message}` };
  }
  for (const [expr, failWhen] of [[m.failIfBodyJsonMatchesCel, true], [m.failIfBodyJsonNotMatchesCel, false]] as const) {
    if (!expr) continue;
    let out: ReturnType<ReturnType<typeof celProgram>>;
    try {
      out = celProgram(expr)(json);
    } catch (e) {
      out = { error: (e as Error).message };
    }
    if ("error" in out) return { reason: "body_cel", message: `error evaluating CEL expression ${JSON.stringify(expr)}: ${out.error}` };
    if (typeof out.value !== "boolean") return { reason: "body_cel", message: `CEL expression ${JSON.stringify(expr)} did not give a boolean` };
    if (out.value === failWhen) return { reason: "body_cel", message: `body ${failWhen ? "matched" : "did not match"} CEL expression ${JSON.stringify(expr)}` };
  }
  return null;
}

/**
 * Checks the final response of a probe.
 * @param tlsUsed whether the final hop was HTTPS
 * @returns the first failure, or null when every check passes
 */
export function checkResponse(head: ResponseHead, body: CheckedBody, tlsUsed: boolean, m: HttpModule | undefined): CheckFailure | null {
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
  if (!m) return null;
  const headers = checkHeaders(head, m);
  if (headers) return headers;
  if (!checksBody(m)) return null;
  if (body.truncated) return { reason: "body_too_large", message: `body larger than the ${BODY_CHECK_DEFAULT_BYTES} bytes kept for the body checks (set body_size_limit to check more); not checked` };
  const text = body.bytes.toString("utf8");
  for (const re of m.failIfBodyMatchesRegexp) {
    if (goRegexp(re).test(text)) return { reason: "body_regexp", message: `body matched /${re}/` };
  }
  for (const re of m.failIfBodyNotMatchesRegexp) {
    if (!goRegexp(re).test(text)) return { reason: "body_regexp", message: `body did not match /${re}/` };
  }
  if (m.failIfBodyJsonMatchesCel || m.failIfBodyJsonNotMatchesCel) return checkCel(text, m);
  return null;
}
