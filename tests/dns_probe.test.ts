/**
 * The dns kind's prober against a real DNS server (tests/helpers/dns_server.ts) on 127.0.0.1 and
 * ::1: query type / class / RD bit as the server reads them, udp and tcp, rcodes and
 * valid_rcodes, every validate_*_rrs check on every section, source_ip_address, and the failure
 * paths (timeout, ids, garbage, closed connections, refused ports, abort). DNS over TLS is in
 * tests/dns_probe_tls.test.ts, the module file in dns_probe_config.test.ts, records' text in
 * dns_probe_rrtext.test.ts.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createSocket } from "node:dgram";
import net from "node:net";
import type { DnsResult } from "../lib/rpc/gen/probermesh/v1/dns_pb.ts";
import { dnsKind } from "../lib/probes/dns/kind.ts";
import { DnsProber } from "../lib/probes/dns/prober.ts";
import { startDnsServer, type DnsTestServer } from "./helpers/dns_server.ts";

let v4: DnsTestServer;
let v6: DnsTestServer;
const prober = new DnsProber();

beforeAll(async () => {
  v4 = await startDnsServer("127.0.0.1");
  v6 = await startDnsServer("::1");
});
afterAll(async () => {
  await v4.close();
  await v6.close();
});

/** Probes `address` (default: the IPv4 server) with a module written as in the probe file. */
function probe(keys: Record<string, unknown>, address = `127.0.0.1:${v4.port}`, signal?: AbortSignal): Promise<DnsResult> {
  return prober.probe(dnsKind.target("r1", address, dnsKind.moduleSchema("/").parse(keys)), signal);
}

/** The query the server read last. */
const lastQuery = (s: DnsTestServer = v4) => s.queries.at(-1)!;

/** A failed result's reason and error, for one readable assertion. */
const verdict = (r: DnsResult) => ({ success: r.success, failedReason: r.failedReason, error: r.error });

const esc = (s: string) => s.replace(/[\\^$.*+?()[\]{}|]/g, "\\$&");

describe("queries as the server reads them", () => {
  test("query_name of type A over udp: NOERROR, section counts, RD set, phases resolve 0 (IP literal) and query > 0", async () => {
    const r = await probe({ query_name: "example.com", query_type: "A" });
    expect(verdict(r)).toEqual({ success: true, failedReason: "", error: "" });
    expect({ rcode: r.rcode, answer: r.answerRrs, authority: r.authorityRrs, additional: r.additionalRrs, truncated: r.truncated }).toEqual({ rcode: "NOERROR", answer: 2, authority: 2, additional: 2, truncated: false });
    expect(lastQuery()).toMatchObject({ transport: "udp", name: "example.com", qtype: 1, qclass: 1, rd: true, from: "127.0.0.1" });
    expect(r.resolveSeconds).toBe(0);
    expect(r.querySeconds).toBeGreaterThan(0);
    expect(r.connectSeconds).toBe(0);
    expect(r.querySeconds).toBeLessThanOrEqual(r.durationSeconds);
    expect(r.sslEarliestCertExpiry).toBe(0n);
  });

  test("defaults are blackbox's: query_type ANY (255), query_class IN (1); the name is sent fully qualified whether written with a dot or not", async () => {
    await probe({ query_name: "example.com." });
    expect(lastQuery()).toMatchObject({ name: "example.com", qtype: 255, qclass: 1 });
    await probe({ query_name: "Example.COM" });
    expect(lastQuery()).toMatchObject({ name: "Example.COM", qtype: 255 });
  });

  test.each([
    ["AAAA", 28], ["MX", 15], ["TXT", 16], ["SOA", 6], ["NS", 2], ["CAA", 257], ["HTTPS", 65], ["NSAP-PTR", 23], ["Reserved", 65535],
  ])("query_type %s goes out as type %d (also types dns-packet has no name for)", async (type, code) => {
    await probe({ query_name: "example.com", query_type: type });
    expect(lastQuery().qtype).toBe(code);
  });

  test.each([["CH", 3], ["HS", 4], ["CS", 2], ["NONE", 254], ["ANY", 255]])("query_class %s goes out as class %d", async (klass, code) => {
    await probe({ query_name: "example.com", query_type: "TXT", query_class: klass });
    expect(lastQuery().qclass).toBe(code);
  });

  test("query_class CH: the CHAOS TXT record comes back in miekg's text form", async () => {
    const r = await probe({ query_name: "example.com", query_type: "TXT", query_class: "CH", validate_answer_rrs: { fail_if_not_matches_regexp: ['^example\\.com\\.\\t3600\\tCH\\tTXT\\t"goCHAOS"$'] } });
    expect(verdict(r)).toEqual({ success: true, failedReason: "", error: "" });
    expect(r.answerRrs).toBe(1);
  });

  test("recursion_desired: the RD bit follows it (default true); blackbox's recursive handler refuses a query without it", async () => {
    expect((await probe({ query_name: "recursive.example.com", query_type: "A" })).success).toBe(true);
    expect(lastQuery().rd).toBe(true);
    const r = await probe({ query_name: "recursive.example.com", query_type: "A", recursion_desired: false });
    expect(lastQuery().rd).toBe(false);
    expect({ ...verdict(r), rcode: r.rcode }).toEqual({ success: false, failedReason: "rcode", error: "rcode REFUSED is not one of the valid rcodes (NOERROR)", rcode: "REFUSED" });
  });

  test("transport_protocol tcp: the query arrives over TCP, connect_seconds is measured, the whole answer comes (no 512-byte limit)", async () => {
    const r = await probe({ query_name: "example.com", transport_protocol: "tcp" });
    expect(verdict(r)).toEqual({ success: true, failedReason: "", error: "" });
    expect(lastQuery().transport).toBe("tcp");
    expect(r.connectSeconds).toBeGreaterThan(0);
    expect({ answer: r.answerRrs, truncated: r.truncated }).toEqual({ answer: 9, truncated: false });
  });

  test("a truncated udp reply (TC bit, ANY too large for 512 bytes) is validated as it is, as blackbox does, and reported truncated", async () => {
    const r = await probe({ query_name: "example.com" });
    expect({ success: r.success, truncated: r.truncated, answer: r.answerRrs }).toEqual({ success: true, truncated: true, answer: 0 });
    const strict = await probe({ query_name: "example.com", validate_answer_rrs: { fail_if_none_matches_regexp: ["\\tA\\t"] } });
    expect(verdict(strict)).toEqual({ success: false, failedReason: "answer_rrs", error: "answer RRs: fail_if_none_matches_regexp specified but no RRs returned" });
  });

  test("the SOA serial is reported for query_type SOA (blackbox's probe_dns_serial), and absent for other types", async () => {
    expect((await probe({ query_name: "example.com", query_type: "SOA" })).serial).toBe(2024010101);
    expect((await probe({ query_name: "example.com", query_type: "A" })).serial).toBeUndefined();
  });

  test.each(["udp", "tcp"])("an IPv6 server as [::1]:port over %s", async (transport) => {
    const r = await probe({ query_name: "example.com", query_type: "AAAA", transport_protocol: transport }, `[::1]:${v6.port}`);
    expect(verdict(r)).toEqual({ success: true, failedReason: "", error: "" });
    expect(lastQuery(v6)).toMatchObject({ transport, qtype: 28, from: "::1" });
  });
});

describe("valid_rcodes", () => {
  test("NXDOMAIN fails by default (NOERROR only) and is accepted when listed", async () => {
    const r = await probe({ query_name: "nx.example.com", query_type: "A" });
    expect({ ...verdict(r), rcode: r.rcode, authority: r.authorityRrs }).toEqual({ success: false, failedReason: "rcode", error: "rcode NXDOMAIN is not one of the valid rcodes (NOERROR)", rcode: "NXDOMAIN", authority: 1 });
    expect((await probe({ query_name: "nx.example.com", valid_rcodes: ["NXDOMAIN"] })).success).toBe(true);
  });

  test("SERVFAIL against [NOERROR, NXDOMAIN] fails, against [SERVFAIL] passes; NOERROR against [NXDOMAIN] fails (blackbox's TestRecursiveDNSResponse)", async () => {
    expect((await probe({ query_name: "servfail.example.com", valid_rcodes: ["NOERROR", "NXDOMAIN"] })).failedReason).toBe("rcode");
    const ok = await probe({ query_name: "servfail.example.com", valid_rcodes: ["SERVFAIL"] });
    expect({ success: ok.success, rcode: ok.rcode }).toEqual({ success: true, rcode: "SERVFAIL" });
    expect((await probe({ query_name: "example.com", query_type: "A", valid_rcodes: ["SERVFAIL", "NXDOMAIN"] })).failedReason).toBe("rcode");
  });
});

describe("validate_answer_rrs / validate_authority_rrs / validate_additional_rrs", () => {
  // example.com A: answer  example.com. 3600 IN A 127.0.0.1 / 127.0.0.2
  //                authority example.com. 7200 IN NS ns1.example.com. / ns2.example.com.
  //                additional ns1.example.com. 7200 IN A 127.0.0.53, ns2.example.com. 7200 IN AAAA ::1
  const cases: [section: string, reason: string, key: string, passes: string[], fails: string[], error: string][] = [
    ["answer", "answer_rrs", "fail_if_matches_regexp", ["7200"], ["127\\.0\\.0\\.2$"], 'at least one RR matched regexp "127\\\\.0\\\\.0\\\\.2$": "example.com.\\t3600\\tIN\\tA\\t127.0.0.2"'],
    ["answer", "answer_rrs", "fail_if_all_match_regexp", ["^example\\.com\\.\\t3600\\tIN\\tA\\t127\\.0\\.0\\.[12]$"], ["\\.1$"], "not all RRs matched fail_if_all_match_regexp"],
    ["answer", "answer_rrs", "fail_if_not_matches_regexp", [".*3600.*"], ["\\.1$"], 'at least one RR did not match regexp "\\\\.1$": "example.com.\\t3600\\tIN\\tA\\t127.0.0.2"'],
    ["answer", "answer_rrs", "fail_if_none_matches_regexp", ["zzz", "\\.2$"], ["127\\.0\\.0\\.3"], "none of the RRs matched fail_if_none_matches_regexp"],
    ["authority", "authority_rrs", "fail_if_matches_regexp", [".*3600.*"], ["\\tNS\\tns2\\."], 'at least one RR matched regexp "\\\\tNS\\\\tns2\\\\.": "example.com.\\t7200\\tIN\\tNS\\tns2.example.com."'],
    ["authority", "authority_rrs", "fail_if_all_match_regexp", ["\\tNS\\t"], ["ns1"], "not all RRs matched fail_if_all_match_regexp"],
    ["authority", "authority_rrs", "fail_if_not_matches_regexp", ["^example\\.com\\.\\t7200\\tIN\\tNS\\tns[12]\\.example\\.com\\.$"], ["ns1"], 'at least one RR did not match regexp "ns1": "example.com.\\t7200\\tIN\\tNS\\tns2.example.com."'],
    ["authority", "authority_rrs", "fail_if_none_matches_regexp", ["ns2\\.example"], ["isp\\.net"], "none of the RRs matched fail_if_none_matches_regexp"],
    ["additional", "additional_rrs", "fail_if_matches_regexp", ["127\\.0\\.0\\.1"], ["\\tAAAA\\t::1$"], 'at least one RR matched regexp "\\\\tAAAA\\\\t::1$": "ns2.example.com.\\t7200\\tIN\\tAAAA\\t::1"'],
    ["additional", "additional_rrs", "fail_if_all_match_regexp", ["^ns[12]\\.example\\.com\\."], [".*127.0.0.*"], "not all RRs matched fail_if_all_match_regexp"],
    ["additional", "additional_rrs", "fail_if_not_matches_regexp", [".*7200.*"], [".*3600.*"], 'at least one RR did not match regexp ".*3600.*": "ns1.example.com.\\t7200\\tIN\\tA\\t127.0.0.53"'],
    ["additional", "additional_rrs", "fail_if_none_matches_regexp", ["127\\.0\\.0\\.53"], [".*127.0.0.3.*"], "none of the RRs matched fail_if_none_matches_regexp"],
  ];
  test.each(cases)("%s section, %s: passes %s... and fails with its reason", async (section, _reason, key, passes, fails, error) => {
    const reason = `${section}_rrs`;
    const ok = await probe({ query_name: "example.com", query_type: "A", [`validate_${section}_rrs`]: { [key]: passes } });
    expect(verdict(ok)).toEqual({ success: true, failedReason: "", error: "" });
    const bad = await probe({ query_name: "example.com", query_type: "A", [`validate_${section}_rrs`]: { [key]: fails } });
    expect(verdict(bad)).toEqual({ success: false, failedReason: reason, error: `${section} RRs: ${error}` });
  });

  test("patterns are RE2 as in blackbox: a leading (?i) and \\Q...\\E work", async () => {
    const r = await probe({ query_name: "example.com", query_type: "A", validate_answer_rrs: { fail_if_not_matches_regexp: ["(?i)^EXAMPLE\\.COM\\.\\tIN"], fail_if_none_matches_regexp: ["\\Q127.0.0.2\\E$"] } });
    expect(verdict(r)).toEqual({ success: false, failedReason: "answer_rrs", error: 'answer RRs: at least one RR did not match regexp "(?i)^EXAMPLE\\\\.COM\\\\.\\\\tIN": "example.com.\\t3600\\tIN\\tA\\t127.0.0.1"' });
    const ok = await probe({ query_name: "example.com", query_type: "A", validate_answer_rrs: { fail_if_not_matches_regexp: ["(?i)^EXAMPLE\\.COM\\.\\t3600\\tin\\ta\\t"], fail_if_none_matches_regexp: ["\\Q127.0.0.2\\E$"] } });
    expect(verdict(ok)).toEqual({ success: true, failedReason: "", error: "" });
  });

  test("an empty section: fail_if_not_matches_regexp and fail_if_none_matches_regexp fail, fail_if_matches_regexp and fail_if_all_match_regexp pass (blackbox's validRRs)", async () => {
    const empty = (v: Record<string, string[]>) => probe({ query_name: "empty.example.com", query_type: "A", validate_answer_rrs: v });
    expect(verdict(await empty({ fail_if_not_matches_regexp: ["."] }))).toEqual({ success: false, failedReason: "answer_rrs", error: "answer RRs: fail_if_not_matches_regexp specified but no RRs returned" });
    expect(verdict(await empty({ fail_if_none_matches_regexp: ["."] }))).toEqual({ success: false, failedReason: "answer_rrs", error: "answer RRs: fail_if_none_matches_regexp specified but no RRs returned" });
    expect((await empty({ fail_if_matches_regexp: ["."], fail_if_all_match_regexp: ["zzz"] })).success).toBe(true);
  });

  test("sections are checked in blackbox's order: rcode, then answer, authority, additional", async () => {
    const all = { fail_if_matches_regexp: ["."] };
    const r = await probe({ query_name: "example.com", query_type: "A", validate_answer_rrs: all, validate_authority_rrs: all, validate_additional_rrs: all });
    expect(r.failedReason).toBe("answer_rrs");
    const r2 = await probe({ query_name: "example.com", query_type: "A", validate_authority_rrs: all, validate_additional_rrs: all });
    expect(r2.failedReason).toBe("authority_rrs");
    const nx = await probe({ query_name: "nx.example.com", validate_authority_rrs: all });
    expect(nx.failedReason).toBe("rcode");
  });

  test("each record type's text as blackbox matches it (exact, anchored)", async () => {
    const cases: [string, string, string][] = [
      ["example.com", "AAAA", "example.com.\t3600\tIN\tAAAA\t2001:db8::1"],
      ["example.com", "MX", "example.com.\t3600\tIN\tMX\t10 mail.example.com."],
      ["example.com", "TXT", 'example.com.\t3600\tIN\tTXT\t"v=spf1 -all" "say \\"hi\\"\\\\"'],
      ["example.com", "SOA", "example.com.\t3600\tIN\tSOA\tns1.example.com. host\\.master.example.com. 2024010101 7200 3600 1209600 300"],
      ["example.com", "NS", "example.com.\t3600\tIN\tNS\tns1.example.com."],
      ["example.com", "CAA", 'example.com.\t3600\tIN\tCAA\t0 issue "letsencrypt.org"'],
      ["www.example.com", "A", "www.example.com.\t300\tIN\tCNAME\texample.com."],
      ["_dns._udp.example.com", "SRV", "_dns._udp.example.com.\t3600\tIN\tSRV\t0 5 53 ns1.example.com."],
      ["1.0.0.127.in-addr.arpa", "PTR", "1.0.0.127.in-addr.arpa.\t3600\tIN\tPTR\texample.com."],
      ["mapped.example.com", "AAAA", "mapped.example.com.\t3600\tIN\tAAAA\t::ffff:1.2.3.4"],
      ["mapped.example.com", "AAAA", "mapped.example.com.\t3600\tIN\tAAAA\t2001:db8::1:0:0:1"],
    ];
    for (const [name, type, text] of cases) {
      const r = await probe({ query_name: name, query_type: type, validate_answer_rrs: { fail_if_none_matches_regexp: [`^${esc(text)}$`] } });
      expect({ text, ...verdict(r) }).toEqual({ text, success: true, failedReason: "", error: "" });
      const off = await probe({ query_name: name, query_type: type, validate_answer_rrs: { fail_if_none_matches_regexp: [`^${esc(text)} $`] } });
      expect({ text, reason: off.failedReason }).toEqual({ text, reason: "answer_rrs" });
    }
  });
});

describe("source_ip_address", () => {
  test.each(["udp", "tcp"])("127.0.0.2 over %s: the server sees the query come from it", async (transport) => {
    const r = await probe({ query_name: "example.com", query_type: "A", transport_protocol: transport, source_ip_address: "127.0.0.2" });
    expect(r.success).toBe(true);
    expect(lastQuery()).toMatchObject({ transport, from: "127.0.0.2" });
  });

  test("an address this host does not have fails as connect, before anything is sent", async () => {
    const before = v4.queries.length;
    const r = await probe({ query_name: "example.com", source_ip_address: "192.0.2.1" });
    expect({ success: r.success, failedReason: r.failedReason }).toEqual({ success: false, failedReason: "connect" });
    expect(r.error).toContain("EADDRNOTAVAIL");
    expect(v4.queries.length).toBe(before);
  });
});

describe("failures", () => {
  test("a silent server: timeout after the module's timeout, the query was sent", async () => {
    const before = v4.queries.length;
    const r = await probe({ query_name: "silent.example.com", timeout: "300ms" });
    expect(verdict(r)).toEqual({ success: false, failedReason: "timeout", error: "timed out waiting for the reply" });
    expect(v4.queries.length).toBe(before + 1);
  });

  test("udp: a reply with another id is ignored (miekg/dns), so it times out; the right id after it is taken", async () => {
    expect(verdict(await probe({ query_name: "wrongid.example.com", timeout: "300ms" }))).toEqual({ success: false, failedReason: "timeout", error: "timed out waiting for the reply" });
    const r = await probe({ query_name: "lateid.example.com" });
    expect({ success: r.success, answer: r.answerRrs }).toEqual({ success: true, answer: 1 });
  });

  test("tcp: a reply with another id fails as protocol", async () => {
    const r = await probe({ query_name: "wrongid.example.com", transport_protocol: "tcp" });
    expect(r.failedReason).toBe("protocol");
    expect(r.error).toMatch(/^reply id \d+ does not match the query's \d+$/);
  });

  test.each(["udp", "tcp"])("a reply that is no DNS message fails as protocol over %s", async (transport) => {
    const r = await probe({ query_name: "garbage.example.com", transport_protocol: transport });
    expect(verdict(r)).toEqual({ success: false, failedReason: "protocol", error: "malformed reply: 5 bytes, shorter than a DNS header" });
  });

  test("tcp: closed without a reply, or in the middle of one, fails as protocol", async () => {
    expect(verdict(await probe({ query_name: "closes.example.com", transport_protocol: "tcp" }))).toEqual({ success: false, failedReason: "protocol", error: "connection closed without a reply" });
    expect(verdict(await probe({ query_name: "half.example.com", transport_protocol: "tcp" }))).toEqual({ success: false, failedReason: "protocol", error: "connection closed in the middle of the reply" });
  });

  test.each(["udp", "tcp"])("nothing listening (ICMP port unreachable / RST) fails as connect over %s", async (transport) => {
    const port = await freePort();
    const r = await probe({ query_name: "example.com", transport_protocol: transport, timeout: "5s" }, `127.0.0.1:${port}`);
    expect({ success: r.success, failedReason: r.failedReason }).toEqual({ success: false, failedReason: "connect" });
    expect(r.error).toContain("ECONNREFUSED");
  });
});

describe("abort and finality", () => {
  test("the signal ends a probe waiting for its reply at once, as timeout 'aborted', and nothing changes the result afterwards", async () => {
    v4.delayMs = 400;
    try {
      const ac = new AbortController();
      const pending = probe({ query_name: "example.com", query_type: "A", timeout: "10s" }, undefined, ac.signal);
      setTimeout(() => ac.abort(), 50);
      const r = await pending;
      expect(verdict(r)).toEqual({ success: false, failedReason: "timeout", error: "aborted" });
      const frozen = JSON.stringify({ ...r, time: undefined }, (_, v) => (typeof v === "bigint" ? String(v) : v));
      await Bun.sleep(600); // the server's late reply arrives at a closed socket
      expect(JSON.stringify({ ...r, time: undefined }, (_, v) => (typeof v === "bigint" ? String(v) : v))).toBe(frozen);
    } finally {
      v4.delayMs = 0;
    }
  });

  test("an already aborted signal: no query is sent", async () => {
    const before = v4.queries.length;
    const r = await probe({ query_name: "example.com" }, undefined, AbortSignal.abort());
    expect(verdict(r)).toEqual({ success: false, failedReason: "timeout", error: "aborted" });
    await Bun.sleep(50);
    expect(v4.queries.length).toBe(before);
  });

  test("a slow reply within the timeout succeeds (the delay is in the query phase)", async () => {
    v4.delayMs = 200;
    try {
      const r = await probe({ query_name: "example.com", query_type: "A", transport_protocol: "tcp" });
      expect(r.success).toBe(true);
      expect(r.querySeconds).toBeGreaterThanOrEqual(0.19); // the server's delay (less a timer's early millisecond)
    } finally {
      v4.delayMs = 0;
    }
  });
});

/** A TCP and UDP port nothing listens on (bound and released). */
async function freePort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise((r) => srv.close(r));
  const u = createSocket("udp4");
  await new Promise<void>((r) => u.bind(port, "127.0.0.1", r));
  u.close();
  return port;
}
