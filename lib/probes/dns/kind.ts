/**
 * The DNS kind's common half (lib/probes/kind.ts): the probe file's `dns:` module with
 * blackbox_exporter's <dns_probe> option names, defaults and validation messages (its
 * CONFIGURATION.md and config/config.go), parsed straight into the protobuf DnsModule handed to
 * agents; and DNS server addressing (target.ts).
 */
import { clone, create, toJson } from "@bufbuild/protobuf";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { isIP } from "node:net";
import { z } from "zod";
import { parseDurationMs } from "../../cli/duration.ts";
import { DnsModuleSchema, DnsResultSchema, DnsRRValidatorSchema, DnsTargetSchema, type DnsModule, type DnsRRValidator } from "../../rpc/gen/probermesh/v1/dns_pb.ts";
import type { ProbeKind } from "../kind.ts";
import { durationString } from "../schema_types.ts";
import { goRegexpError } from "../regexp.ts";
import { redactTlsConfig, tlsConfigFrom, tlsConfigKeys, type FileReader } from "../tls.ts";
import { classCode, rcodeCode, typeCode } from "./codes.ts";
import { DNS_DEFAULTS } from "./defaults.ts";
import { FAILED_REASON_DOCS } from "./failed_reason.ts";
import { normaliseDnsTarget } from "./target.ts";

/** An RE2 pattern (Go's regexp, as blackbox matches them), translated for JavaScript or refused (lib/probes/regexp.ts). */
const re2 = z.string().superRefine((s, ctx) => {
  const why = goRegexpError(s);
  if (why) ctx.addIssue({ code: "custom", message: `is not a valid RE2 regular expression: ${why}` });
});

const regexps = (what: string) => z.array(re2).optional().describe(what);

/** blackbox's DNSRRValidator; a key given with nothing after it (YAML null) is an empty validator, as in blackbox. */
const rrValidator = (section: string, reason: string) =>
  z
    .strictObject({
      fail_if_matches_regexp: regexps("fail when any record matches one of these"),
      fail_if_all_match_regexp: regexps("fail unless every record matches every one of these (blackbox's behaviour, whatever the name suggests); an empty section passes"),
      fail_if_not_matches_regexp: regexps("fail when some record does not match one of these, or the section is empty"),
      fail_if_none_matches_regexp: regexps("fail when no record matches any of these, or the section is empty"),
    })
    .nullable()
    .optional()
    .describe(`{fail_if_matches_regexp, fail_if_all_match_regexp, fail_if_not_matches_regexp, fail_if_none_matches_regexp}: RE2 regular expressions matched (unanchored) against each record of the ${section} section in miekg/dns text form ("example.com.\\t3600\\tIN\\tA\\t127.0.0.1"); fails with ${reason}`);

/** The `dns:` keys as written in the file (blackbox_exporter's names, in its CONFIGURATION.md order); docs list them from here. */
export const dnsKeys = z.strictObject({
  preferred_ip_protocol: z.enum(["ip4", "ip6"]).optional().describe(`address family tried first for the DNS server's name (default ${DNS_DEFAULTS.preferredIpProtocol}; blackbox_exporter defaults to ip6)`),
  ip_protocol_fallback: z.boolean().optional().describe(`use the other family when the preferred one has no address (default ${DNS_DEFAULTS.ipProtocolFallback})`),
  source_ip_address: z.string().optional().describe("local IP address the query is sent from (default: chosen by the kernel)"),
  transport_protocol: z.enum(["udp", "tcp"], { error: "expected transport protocol udp or tcp" }).optional().describe(`udp or tcp (default ${DNS_DEFAULTS.transportProtocol}; tcp when dns_over_tls)`),
  dns_over_tls: z.boolean().optional().describe("DNS over TLS (RFC 7858) on TCP, default port 853 (default false)"),
  tls_config: tlsConfigKeys.optional(),
  query_name: z.string().optional().describe("the name asked for (required)"),
  query_type: z.string().optional().describe(`record type as miekg/dns spells it: A, AAAA, MX, TXT, SOA, ... (default ${DNS_DEFAULTS.queryType})`),
  query_class: z.string().optional().describe(`IN, CH, HS, CS, NONE or ANY (default ${DNS_DEFAULTS.queryClass})`),
  recursion_desired: z.boolean().optional().describe(`set the RD bit of the query (default ${DNS_DEFAULTS.recursionDesired})`),
  valid_rcodes: z.array(z.string()).optional().describe(`accepted response codes: NOERROR, NXDOMAIN, SERVFAIL, REFUSED, ... (default ${DNS_DEFAULTS.validRcodes.join(", ")})`),
  validate_answer_rrs: rrValidator("answer", "answer_rrs"),
  validate_authority_rrs: rrValidator("authority", "authority_rrs"),
  validate_additional_rrs: rrValidator("additional", "additional_rrs"),
  timeout: durationString.optional().describe(`deadline of the whole probe, resolve to reply (default ${DNS_DEFAULTS.timeoutMs / 1000}s; blackbox's module-level timeout)`),
});

/** Why `name` cannot be sent as a query name (wire limits of RFC 1035 section 2.3.4), or "". */
export function queryNameProblem(name: string): string {
  if (name === ".") return "";
  if (name.includes("\\")) return "escapes (\\) are not supported in query_name";
  const labels = name.replace(/\.$/, "").split(".");
  if (labels.some((l) => l === "")) return "has an empty label";
  if (labels.some((l) => Buffer.byteLength(l) > 63)) return "has a label longer than 63 bytes";
  if (labels.reduce((n, l) => n + 1 + Buffer.byteLength(l), 1) > 255) return "is longer than 255 bytes";
  return "";
}

type Validator = NonNullable<z.infer<typeof dnsKeys>["validate_answer_rrs"]>;

const validator = (v: Validator | null | undefined): DnsRRValidator =>
  create(DnsRRValidatorSchema, {
    failIfMatchesRegexp: v?.fail_if_matches_regexp ?? [],
    failIfAllMatchRegexp: v?.fail_if_all_match_regexp ?? [],
    failIfNotMatchesRegexp: v?.fail_if_not_matches_regexp ?? [],
    failIfNoneMatchesRegexp: v?.fail_if_none_matches_regexp ?? [],
  });

/**
 * The `dns:` module schema: validates the keys as blackbox does (issues at the key, with its
 * messages: "query name must be set for DNS module", "query class 'X' is not valid", "query type
 * 'X' is not valid"), plus what blackbox only finds when probing (an unknown rcode, DoT over udp,
 * a source address that is no IP); reads tls_config's files relative to `baseDir`; builds the
 * DnsModule with every default filled in.
 */
function dnsModuleSchema(baseDir: string): z.ZodType<DnsModule, unknown> {
  return dnsKeys.transform((d, ctx): DnsModule => {
    const issue = (path: (string | number)[], message: string) => ctx.addIssue({ code: "custom", path, message });
    const files: FileReader = { baseDir, issue };
    if (!d.query_name) issue(["query_name"], "query name must be set for DNS module");
    else if (queryNameProblem(d.query_name)) issue(["query_name"], `query name '${d.query_name}' ${queryNameProblem(d.query_name)}`);
    if (d.query_class !== undefined && classCode(d.query_class) === undefined) issue(["query_class"], `query class '${d.query_class}' is not valid`);
    if (d.query_type !== undefined && typeCode(d.query_type) === undefined) issue(["query_type"], `query type '${d.query_type}' is not valid`);
    if (d.valid_rcodes?.length === 0) issue(["valid_rcodes"], "must list at least one rcode (leave it out for NOERROR)");
    d.valid_rcodes?.forEach((c, i) => rcodeCode(c) === undefined && issue(["valid_rcodes", i], `rcode '${c}' is not valid`));
    if (d.dns_over_tls && d.transport_protocol === "udp") issue(["transport_protocol"], "expected transport protocol tcp for DoT (dns_over_tls)");
    if (d.source_ip_address !== undefined && !isIP(d.source_ip_address)) issue(["source_ip_address"], `source ip address '${d.source_ip_address}' is not an IP address`);
    return create(DnsModuleSchema, {
      timeout: durationFromMs(d.timeout ? parseDurationMs(d.timeout) : DNS_DEFAULTS.timeoutMs),
      queryName: d.query_name ?? "",
      queryType: d.query_type ?? DNS_DEFAULTS.queryType,
      queryClass: d.query_class ?? DNS_DEFAULTS.queryClass,
      transportProtocol: d.transport_protocol ?? (d.dns_over_tls ? "tcp" : DNS_DEFAULTS.transportProtocol),
      dnsOverTls: d.dns_over_tls ?? false,
      tlsConfig: tlsConfigFrom(d.tls_config, files),
      preferredIpProtocol: d.preferred_ip_protocol ?? DNS_DEFAULTS.preferredIpProtocol,
      ipProtocolFallback: d.ip_protocol_fallback ?? DNS_DEFAULTS.ipProtocolFallback,
      sourceIpAddress: d.source_ip_address ?? "",
      recursionDesired: d.recursion_desired ?? DNS_DEFAULTS.recursionDesired,
      validRcodes: d.valid_rcodes ?? [...DNS_DEFAULTS.validRcodes],
      validateAnswerRrs: validator(d.validate_answer_rrs),
      validateAuthorityRrs: validator(d.validate_authority_rrs),
      validateAdditionalRrs: validator(d.validate_additional_rrs),
    });
  });
}

/** A copy of `m` with the TLS client key replaced by `placeholder`. */
export function redactDnsModule(m: DnsModule, placeholder: string): DnsModule {
  const r = clone(DnsModuleSchema, m);
  redactTlsConfig(r.tlsConfig, placeholder);
  return r;
}

export const dnsKind: ProbeKind<"dns"> = {
  type: "dns",
  resultSchema: DnsResultSchema,
  keys: dnsKeys,
  failedReasons: FAILED_REASON_DOCS,
  moduleSchema: dnsModuleSchema,
  // A dns block without a dns: module: what blackbox probes for `prober: dns` without a dns
  // section (its DNSProbe defaults, query name "" sent as the root ".").
  defaultModule: () => dnsModuleSchema("/").parse({ query_name: "." }),
  normaliseTarget: normaliseDnsTarget,
  targetDescription: "DNS server host[:port]",
  target: (targetRegion, address, module) => create(DnsTargetSchema, { targetRegion, address, module }),
  moduleJson: (m) => toJson(DnsModuleSchema, m),
  redactModule: redactDnsModule,
  addressOf: (t) => t.address,
};
