/**
 * The verdict on a reply, as blackbox_exporter's prober/dns.go: validRcode, then validRRs on the
 * answer, authority and additional sections in that order; the first failure is the probe's.
 */
import type { DnsModule, DnsRRValidator } from "../../rpc/gen/probermesh/v1/dns_pb.ts";
import { goRegexp } from "../regexp.ts";
import { rcodeCode, rcodeName } from "./codes.ts";
import { ProbeFailure, type FailedReason } from "./failed_reason.ts";

/**
 * Whether the RE2 `pattern` matches `text` anywhere (Go's regexp.MatchString), through the tcp
 * kind's RE2 translation (compiled once per pattern).
 * @throws ProbeFailure when the pattern does not compile here (blackbox: "Error matching regexp")
 */
function matches(pattern: string, text: string, reason: FailedReason): boolean {
  try {
    return goRegexp(pattern).test(text);
  } catch (e) {
    throw new ProbeFailure(reason, `error matching regexp ${JSON.stringify(pattern)}: ${(e as Error).message}`);
  }
}

/**
 * blackbox's validRRs over one section's records (miekg text form, rr_text.ts).
 * @returns "" when valid, else why not (blackbox's log message)
 */
export function rrProblem(rrs: readonly string[], v: DnsRRValidator | undefined, reason: FailedReason): string {
  if (!v) return "";
  if (rrs.length === 0 && v.failIfNotMatchesRegexp.length > 0) return "fail_if_not_matches_regexp specified but no RRs returned";
  if (rrs.length === 0 && v.failIfNoneMatchesRegexp.length > 0) return "fail_if_none_matches_regexp specified but no RRs returned";
  let anyMatch = false;
  let allMatch = true;
  for (const rr of rrs) {
    for (const p of v.failIfMatchesRegexp) if (matches(p, rr, reason)) return `at least one RR matched regexp ${JSON.stringify(p)}: ${JSON.stringify(rr)}`;
    for (const p of v.failIfAllMatchRegexp) if (!matches(p, rr, reason)) allMatch = false;
    for (const p of v.failIfNotMatchesRegexp) if (!matches(p, rr, reason)) return `at least one RR did not match regexp ${JSON.stringify(p)}: ${JSON.stringify(rr)}`;
    for (const p of v.failIfNoneMatchesRegexp) if (matches(p, rr, reason)) anyMatch = true;
  }
  // As blackbox's code and tests have it (PR #552: "pass if all records match"): it fails unless
  // every record matches every pattern, whatever the key's name suggests; an empty section passes.
  if (v.failIfAllMatchRegexp.length > 0 && !allMatch) return "not all RRs matched fail_if_all_match_regexp";
  if (v.failIfNoneMatchesRegexp.length > 0 && !anyMatch) return "none of the RRs matched fail_if_none_matches_regexp";
  return "";
}

/** The sections of a reply, each record in miekg text form. */
export interface Sections {
  answer: string[];
  authority: string[];
  additional: string[];
}

/**
 * Checks a reply's response code and sections against the module.
 * @throws ProbeFailure rcode, answer_rrs, authority_rrs or additional_rrs
 */
export function checkReply(rcode: number, s: Sections, m: DnsModule): void {
  const valid = m.validRcodes.length ? m.validRcodes : ["NOERROR"];
  if (!valid.some((c) => rcodeCode(c) === rcode)) throw new ProbeFailure("rcode", `rcode ${rcodeName(rcode)} is not one of the valid rcodes (${valid.join(", ")})`);
  const sections = [
    ["answer_rrs", s.answer, m.validateAnswerRrs],
    ["authority_rrs", s.authority, m.validateAuthorityRrs],
    ["additional_rrs", s.additional, m.validateAdditionalRrs],
  ] as const;
  for (const [reason, rrs, v] of sections) {
    const problem = rrProblem(rrs, v, reason);
    if (problem) throw new ProbeFailure(reason, `${reason.replace("_rrs", "")} RRs: ${problem}`);
  }
}
