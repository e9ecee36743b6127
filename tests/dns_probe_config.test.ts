/**
 * The dns kind's common and server halves: blackbox_exporter's dns modules and testdata
 * (tests/fixtures/blackbox/, copied from its example.yml, blackbox-good.yml and config/testdata)
 * through the probe file's loader, every key's validation with blackbox's messages, target
 * syntax, redaction, result checks, the metrics the shared ingest publishes, and the generated
 * blocks of docs/kinds/dns.md.
 */
import { drain } from "../lib/steps.ts";
import { describe, expect, test } from "bun:test";
import { create } from "@bufbuild/protobuf";
import { durationMs, timestampFromMs } from "@bufbuild/protobuf/wkt";
import { readFileSync } from "node:fs";
import { parse } from "yaml";
import { SeriesStore } from "../lib/metrics/series.ts";
import { checkDnsResult, dnsIngest } from "../lib/probes/dns/ingest.ts";
import { dnsKind } from "../lib/probes/dns/kind.ts";
import { DnsResultSchema, type DnsResult } from "../lib/rpc/gen/probermesh/v1/dns_pb.ts";
import { parseProbeFile } from "../lib/targets/config.ts";
import { modulesSchema } from "../lib/targets/modules.ts";
import { generatedBlocks } from "../scripts/gen-docs.ts";
import { makeCerts } from "./helpers/certs.ts";

const DIR = new URL("./fixtures/blackbox/", import.meta.url).pathname;
const ROOT = new URL("../", import.meta.url).pathname;
const schema = dnsKind.moduleSchema(DIR);

/** The issues of a `dns:` section, as path and message. */
const issues = (input: unknown) => {
  const r = schema.safeParse(input);
  return r.success ? [] : r.error.issues.map((i) => ({ path: i.path.join("."), message: i.message }));
};

/** A fixture's modules through the probe file's modules: loader; its issues with their paths. */
const fixture = (file: string) => modulesSchema(DIR).safeParse(parse(readFileSync(`${DIR}${file}`, "utf8")).modules);

describe("blackbox_exporter's dns modules and testdata", () => {
  test("every dns module of example.yml and blackbox-good.yml is accepted, with its options carried into the protobuf module", () => {
    const r = fixture("dns-example.yml");
    expect(r.error?.issues ?? []).toEqual([]);
    const m = Object.fromEntries(Object.entries(r.data!).map(([k, v]) => [k, v.prober === "dns" ? v.module : undefined]));
    expect(Object.keys(m).sort()).toEqual(["dns_soa", "dns_tcp_example", "dns_test", "dns_udp_example"]);
    const udp = m.dns_udp_example!;
    expect({ name: udp.queryName, type: udp.queryType, klass: udp.queryClass, transport: udp.transportProtocol, rcodes: udp.validRcodes, timeoutMs: durationMs(udp.timeout!) })
      .toEqual({ name: "www.prometheus.io", type: "A", klass: "IN", transport: "udp", rcodes: ["NOERROR"], timeoutMs: 5000 });
    expect(udp.validateAnswerRrs).toMatchObject({ failIfMatchesRegexp: [".*127.0.0.1"], failIfAllMatchRegexp: [".*127.0.0.1"], failIfNotMatchesRegexp: ["www.prometheus.io.\t300\tIN\tA\t127.0.0.1"], failIfNoneMatchesRegexp: ["127.0.0.1"] });
    expect(udp.validateAuthorityRrs?.failIfMatchesRegexp).toEqual([".*127.0.0.1"]);
    expect(udp.validateAdditionalRrs?.failIfMatchesRegexp).toEqual([".*127.0.0.1"]);
    expect({ type: m.dns_soa!.queryType, timeoutMs: durationMs(m.dns_soa!.timeout!) }).toEqual({ type: "SOA", timeoutMs: 10_000 });
    expect({ transport: m.dns_tcp_example!.transportProtocol, ip: m.dns_tcp_example!.preferredIpProtocol, type: m.dns_tcp_example!.queryType }).toEqual({ transport: "tcp", ip: "ip4", type: "ANY" });
    expect({ ip: m.dns_test!.preferredIpProtocol, fallback: m.dns_test!.ipProtocolFallback, recursion: m.dns_test!.recursionDesired }).toEqual({ ip: "ip4", fallback: false, recursion: true });
  });

  test.each([
    ["invalid-dns-module.yml", "dns_test.dns.query_name", "query name must be set for DNS module"],
    ["invalid-dns-class.yml", "dns_test.dns.query_class", "query class 'X' is not valid"],
    ["invalid-dns-type.yml", "dns_test.dns.query_type", "query type 'X' is not valid"],
  ])("%s is refused at %s with blackbox's message", (file, path, message) => {
    const r = fixture(file);
    expect(r.error?.issues.map((i) => ({ path: i.path.join("."), message: i.message }))).toEqual([{ path, message }]);
  });
});

describe("the dns: section", () => {
  test("defaults are blackbox's (ANY, IN, udp, RD, NOERROR, fallback) with a 10 s timeout and ip4 preferred", () => {
    const m = schema.parse({ query_name: "example.com" });
    expect({ ...m, $typeName: undefined, timeout: durationMs(m.timeout!), tlsConfig: undefined, validateAnswerRrs: undefined, validateAuthorityRrs: undefined, validateAdditionalRrs: undefined }).toEqual({
      $typeName: undefined, timeout: 10_000, queryName: "example.com", queryType: "ANY", queryClass: "IN", transportProtocol: "udp", dnsOverTls: false, tlsConfig: undefined,
      preferredIpProtocol: "ip4", ipProtocolFallback: true, sourceIpAddress: "", recursionDesired: true, validRcodes: ["NOERROR"],
      validateAnswerRrs: undefined, validateAuthorityRrs: undefined, validateAdditionalRrs: undefined,
    });
    expect(m.validateAnswerRrs?.failIfMatchesRegexp).toEqual([]);
  });

  test("every key is carried; tls_config files are read relative to the probe file; a validator given as YAML null is empty", async () => {
    const certs = await makeCerts();
    const m = dnsKind.moduleSchema(certs.dir).parse(parse(`
query_name: example.com
query_type: MX
query_class: CH
transport_protocol: tcp
dns_over_tls: true
tls_config: { ca_file: ca.pem, server_name: dns.example }
preferred_ip_protocol: ip6
ip_protocol_fallback: false
source_ip_address: "::1"
recursion_desired: false
valid_rcodes: [NOERROR, NXDOMAIN, NOTIMPL]
validate_answer_rrs: { fail_if_all_match_regexp: [a], fail_if_none_matches_regexp: [b] }
validate_authority_rrs:
validate_additional_rrs: { fail_if_not_matches_regexp: [c] }
timeout: 1500ms
`));
    expect({ type: m.queryType, klass: m.queryClass, transport: m.transportProtocol, dot: m.dnsOverTls, ip: m.preferredIpProtocol, fallback: m.ipProtocolFallback, source: m.sourceIpAddress, rd: m.recursionDesired, rcodes: m.validRcodes, timeoutMs: durationMs(m.timeout!) })
      .toEqual({ type: "MX", klass: "CH", transport: "tcp", dot: true, ip: "ip6", fallback: false, source: "::1", rd: false, rcodes: ["NOERROR", "NXDOMAIN", "NOTIMPL"], timeoutMs: 1500 });
    expect({ ca: m.tlsConfig!.caPem.includes("BEGIN CERTIFICATE"), name: m.tlsConfig!.serverName }).toEqual({ ca: true, name: "dns.example" });
    expect([m.validateAnswerRrs!.failIfAllMatchRegexp, m.validateAnswerRrs!.failIfNoneMatchesRegexp, m.validateAuthorityRrs!.failIfMatchesRegexp, m.validateAdditionalRrs!.failIfNotMatchesRegexp]).toEqual([["a"], ["b"], [], ["c"]]);
  });

  test.each([
    [{}, "query_name", "query name must be set for DNS module"],
    [{ query_name: "" }, "query_name", "query name must be set for DNS module"],
    [{ query_name: "a..b" }, "query_name", "query name 'a..b' has an empty label"],
    [{ query_name: `${"x".repeat(64)}.com` }, "query_name", `query name '${"x".repeat(64)}.com' has a label longer than 63 bytes`],
    [{ query_name: "a", query_type: "a" }, "query_type", "query type 'a' is not valid"], // case-sensitive, as miekg's StringToType
    [{ query_name: "a", query_type: "TYPE65" }, "query_type", "query type 'TYPE65' is not valid"],
    [{ query_name: "a", query_class: "in" }, "query_class", "query class 'in' is not valid"],
    [{ query_name: "a", transport_protocol: "sctp" }, "transport_protocol", "expected transport protocol udp or tcp"],
    [{ query_name: "a", dns_over_tls: true, transport_protocol: "udp" }, "transport_protocol", "expected transport protocol tcp for DoT (dns_over_tls)"],
    [{ query_name: "a", valid_rcodes: ["NOERROR", "OK"] }, "valid_rcodes.1", "rcode 'OK' is not valid"],
    [{ query_name: "a", valid_rcodes: [] }, "valid_rcodes", "must list at least one rcode (leave it out for NOERROR)"],
    [{ query_name: "a", source_ip_address: "localhost" }, "source_ip_address", "source ip address 'localhost' is not an IP address"],
    [{ query_name: "a", validate_answer_rrs: { fail_if_matches_regexp: ["("] } }, "validate_answer_rrs.fail_if_matches_regexp.0", "is not a valid RE2 regular expression: missing )"],
    [{ query_name: "a", validate_additional_rrs: { fail_if_none_matches_regexp: ["x", "(a)\\1"] } }, "validate_additional_rrs.fail_if_none_matches_regexp.1", "is not a valid RE2 regular expression: invalid escape sequence \\1 (backreferences are not RE2)"],
    [{ query_name: "a", timeout: "0s" }, "timeout", "must be a positive duration such as 15ms, 5s or 1m30s"],
    [{ query_name: "a", preferred_ip_protocol: "ip5" }, "preferred_ip_protocol", 'Invalid option: expected one of "ip4"|"ip6"'],
  ])("%j is refused at %s", (input, path, message) => {
    expect(issues(input)).toEqual([{ path, message }]);
  });

  test("unknown keys are refused, in the section and in a validator", () => {
    expect(issues({ query_name: "a", querry_type: "A" })[0]).toMatchObject({ path: "", message: expect.stringContaining("querry_type") });
    expect(issues({ query_name: "a", validate_answer_rrs: { fail_if_match: ["x"] } })[0]).toMatchObject({ path: "validate_answer_rrs", message: expect.stringContaining("fail_if_match") });
  });

  test("a dns block without a dns: module queries the root, as blackbox's prober: dns without a dns section does", () => {
    const f = parseProbeFile("prober_configs:\n  - prober_type: dns\n    region: r1\n    targets: [127.0.0.1]\n", "probes.yml");
    const b = f.blocks[0]!;
    expect({ type: b.proberType, targets: b.targets, name: b.proberType === "dns" && b.module.queryName, qtype: b.proberType === "dns" && b.module.queryType }).toEqual({ type: "dns", targets: ["127.0.0.1"], name: ".", qtype: "ANY" });
  });

  test("a probe file with a dns block names a bad target with the kind's description", () => {
    expect(() => parseProbeFile("prober_configs:\n  - prober_type: dns\n    region: r1\n    dns: { query_name: example.com }\n    targets: ['http://x']\n", "probes.yml")).toThrow('"http://x" is not a valid DNS server host[:port]');
  });
});

describe("targets", () => {
  test.each([
    ["8.8.8.8", "8.8.8.8"], ["8.8.8.8:53", "8.8.8.8:53"], ["8.8.8.8:053", "8.8.8.8:53"], ["DNS.Example.com", "dns.example.com"], ["ns1.example.com:5353", "ns1.example.com:5353"],
    ["[2001:DB8::0:1]:853", "[2001:db8::1]:853"], ["[::1]", "[::1]"], ["2001:db8::1", "[2001:db8::1]"], ["::1", "[::1]"],
  ])("%s is written %s", (input, want) => {
    expect(dnsKind.normaliseTarget(input)).toBe(want);
  });

  test.each(["", "http://8.8.8.8", "8.8.8.8:0", "8.8.8.8:65536", "host:port", "[8.8.8.8]:53", "[::1", "a b", "ex ample.com:53", "x:1:2", "/path"])("%j is no DNS server", (input) => {
    expect(dnsKind.normaliseTarget(input)).toBeNull();
  });

  test("description and addressing", () => {
    expect(dnsKind.targetDescription).toBe("DNS server host[:port]");
    const t = dnsKind.target("r1", "[::1]:53", dnsKind.defaultModule());
    expect({ region: t.targetRegion, address: dnsKind.addressOf(t) }).toEqual({ region: "r1", address: "[::1]:53" });
  });
});

describe("redaction and JSON", () => {
  test("the TLS client key is replaced; nothing else of the module is secret", async () => {
    const certs = await makeCerts();
    const m = dnsKind.moduleSchema("/").parse({ query_name: "a", dns_over_tls: true, tls_config: { cert_file: certs.clientCert, key_file: certs.clientKey } });
    const r = dnsKind.redactModule(m, "<secret>");
    expect({ key: r.tlsConfig!.keyPem, cert: r.tlsConfig!.certPem === m.tlsConfig!.certPem, original: m.tlsConfig!.keyPem.includes("PRIVATE KEY") }).toEqual({ key: "<secret>", cert: true, original: true });
    expect(dnsKind.moduleJson(r)).toMatchObject({ queryName: "a", dnsOverTls: true, transportProtocol: "tcp", tlsConfig: { keyPem: "<secret>" } });
  });
});

describe("server half", () => {
  const result = (over: Partial<Omit<DnsResult, "$typeName">> = {}) => create(DnsResultSchema, { targetRegion: "r2", address: "127.0.0.1", time: timestampFromMs(Date.now()), success: true, durationSeconds: 0.01, querySeconds: 0.005, ...over });

  test("results are checked: phases, connect/tls seconds, failed_reason from the list, success agreeing with it, certificate expiry", () => {
    expect(checkDnsResult(result())).toBe("");
    expect(checkDnsResult(result({ success: false, failedReason: "answer_rrs" }))).toBe("");
    expect(checkDnsResult(result({ success: false, failedReason: "status_code" }))).toBe('unknown failed_reason "status_code"');
    expect(checkDnsResult(result({ failedReason: "rcode" }))).toBe("success and failed_reason disagree");
    expect(checkDnsResult(result({ querySeconds: -1 }))).toBe("phase out of range");
    expect(checkDnsResult(result({ tlsSeconds: Number.NaN }))).toBe("connect_seconds or tls_seconds out of range");
    expect(checkDnsResult(result({ sslEarliestCertExpiry: -5n }))).toBe("ssl_earliest_cert_expiry out of range");
  });

  test("the shared ingest publishes prober_dns_* with phases resolve and query, failures by reason, and the DoT certificate expiry", () => {
    const store = new SeriesStore(60_000);
    const ingest = dnsIngest(store);
    const w = ingest.openWindow();
    const ok = result({ resolveSeconds: 0.002, querySeconds: 0.004, sslEarliestCertExpiry: 1_900_000_000n });
    for (const r of [ok, result({ success: false, failedReason: "rcode" }), result({ success: false, failedReason: "rcode" })]) {
      ingest.count({ sourceRegion: "r1", agentIp: "10.0.0.1", result: r });
      w.add({ sourceRegion: "r1", agentIp: "10.0.0.1", result: r });
    }
    drain(w.publish(Date.now()));
    const [agg] = ingest.latest();
    expect({ results: agg!.results, phases: agg!.phases, failed: Object.fromEntries(agg!.failedByReason), expiry: agg!.certExpiry }).toEqual({ results: 3, phases: { resolve: 0.002, query: 0.004 }, failed: { rcode: 2 }, expiry: 1_900_000_000 });
    const names = store.specs.map((s) => s.name);
    expect(names).toEqual(expect.arrayContaining(["prober_dns_probes_total", "prober_dns_probes_failed_total", "prober_dns_failed", "prober_dns_duration_seconds", "prober_dns_ssl_earliest_cert_expiry"]));
  });
});

describe("docs/kinds/dns.md", () => {
  test("its generated blocks (module keys, failed reasons) are fresh", () => {
    const text = readFileSync(`${ROOT}docs/kinds/dns.md`, "utf8");
    const blocks = generatedBlocks();
    for (const name of ["dns-module", "dns-failed-reasons"]) {
      const m = new RegExp(`<!-- generated:${name} -->\\n([\\s\\S]*?)\\n<!-- /generated:${name} -->`).exec(text);
      expect({ name, block: m?.[1] }).toEqual({ name, block: blocks[name] });
    }
  });
});
