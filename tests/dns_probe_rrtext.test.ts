/**
 * Records as text (lib/probes/dns/rr_text.ts), the form blackbox_exporter's validate_*_rrs match:
 * the expected strings are what blackbox_exporter 0.23.0 (Debian's prometheus-blackbox-exporter)
 * logged as "Validating RR" for the test zone (tests/helpers/dns_server.ts), except the
 * IPv4-mapped AAAA, which miekg/dns prints "::ffff:1.2.3.4" since v1.1.56 (blackbox's current
 * go.mod has v1.1.72; 0.23.0 printed "1.2.3.4"). tests/dns_probe_parity.test.ts checks the same
 * against the installed blackbox_exporter live.
 */
import { describe, expect, test } from "bun:test";
import packet, { type Answer } from "dns-packet";
import { ipv6Text, nameText, rrText } from "../lib/probes/dns/rr_text.ts";
import { ZONE } from "./helpers/dns_server.ts";

/** The records of `name` in the zone as a client decodes them from the wire. */
function decoded(name: string): Answer[] {
  return packet.decode(packet.encode({ type: "response", id: 1, answers: ZONE[name]! })).answers!;
}

describe("records as miekg/dns prints them (blackbox_exporter's own output)", () => {
  test("example.com: A, AAAA, MX, TXT (quotes and backslash escaped), SOA (a dot inside the mailbox's first label), NS, CAA, CHAOS TXT", () => {
    expect(decoded("example.com").map(rrText)).toEqual([
      "example.com.\t3600\tIN\tA\t127.0.0.1",
      "example.com.\t3600\tIN\tA\t127.0.0.2",
      "example.com.\t3600\tIN\tAAAA\t2001:db8::1",
      "example.com.\t3600\tIN\tMX\t10 mail.example.com.",
      'example.com.\t3600\tIN\tTXT\t"v=spf1 -all" "say \\"hi\\"\\\\"',
      "example.com.\t3600\tIN\tSOA\tns1.example.com. host\\.master.example.com. 2024010101 7200 3600 1209600 300",
      "example.com.\t3600\tIN\tNS\tns1.example.com.",
      "example.com.\t3600\tIN\tNS\tns2.example.com.",
      'example.com.\t3600\tIN\tCAA\t0 issue "letsencrypt.org"',
      'example.com.\t3600\tCH\tTXT\t"goCHAOS"',
    ]);
  });

  test("CNAME, SRV, PTR", () => {
    expect([...decoded("www.example.com"), ...decoded("_dns._udp.example.com"), ...decoded("1.0.0.127.in-addr.arpa")].map(rrText)).toEqual([
      "www.example.com.\t300\tIN\tCNAME\texample.com.",
      "_dns._udp.example.com.\t3600\tIN\tSRV\t0 5 53 ns1.example.com.",
      "1.0.0.127.in-addr.arpa.\t3600\tIN\tPTR\texample.com.",
    ]);
  });

  test("escapes: unprintable bytes as \\DDD, special bytes of names backslashed; HINFO, SPF, RFC 3597 for an unknown type, DNAME, RFC 5952 IPv6, the root", () => {
    expect(decoded("odd.example.com").map(rrText)).toEqual([
      'odd.example.com.\t3600\tIN\tTXT\t"\\000\\200\\"\\\\A" "two words"',
      "a\\ b\\@c\\;d.example.com.\t3600\tIN\tA\t10.0.0.1",
      'odd.example.com.\t3600\tIN\tHINFO\t"x86 64" "Li\\"nux"',
      'odd.example.com.\t3600\tIN\tSPF\t"v=spf1 -all"',
      "odd.example.com.\t3600\tCLASS1\tTYPE65280\t\\# 4 0a000001",
      "odd.example.com.\t3600\tIN\tDNAME\ttarget.example.net.",
      "odd.example.com.\t3600\tIN\tAAAA\t2001:0:0:1::1",
      "odd.example.com.\t3600\tIN\tAAAA\t::",
      "odd.example.com.\t3600\tIN\tMX\t0 .",
    ]);
  });

  test("IPv4-mapped AAAA as miekg/dns v1.1.56+ prints it; zeros compressed at the first longest run", () => {
    expect(decoded("mapped.example.com").map(rrText)).toEqual([
      "mapped.example.com.\t3600\tIN\tAAAA\t::ffff:1.2.3.4",
      "mapped.example.com.\t3600\tIN\tAAAA\t2001:db8::1:0:0:1",
    ]);
  });
});

describe("pieces", () => {
  test.each([
    ["2001:db8::1", "2001:db8::1"], ["::", "::"], ["::1", "::1"], ["1::", "1::"], ["2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"],
    ["2001:0:0:1:0:0:0:1", "2001:0:0:1::1"], ["0:0:1:0:0:0:0:0", "0:0:1::"], ["2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"],
    ["FE80::ABCD", "fe80::abcd"], ["::ffff:102:304", "::ffff:1.2.3.4"],
  ])("ipv6Text(%s) = %s (Go's net.IP.String)", (input, want) => {
    expect(ipv6Text(input)).toBe(want);
  });

  test("names: the root is '.', everything else gets its trailing dot; control bytes as \\DDD", () => {
    expect([nameText("."), nameText(""), nameText("Example.COM"), nameText("a\u0001b.c")]).toEqual([".", ".", "Example.COM.", "a\\001b.c."]);
  });

  test("an OPT record in the additional section prints as miekg's pseudo-section (options left out)", () => {
    const msg = packet.decode(packet.encode({ type: "response", id: 1, additionals: [{ type: "OPT", name: ".", udpPayloadSize: 1232, flags: packet.DNSSEC_OK, options: [] } as unknown as Answer] }));
    expect(msg.additionals!.map(rrText)).toEqual(["\n;; OPT PSEUDOSECTION:\n; EDNS: version 0; flags: do; udp: 1232"]);
  });

  test("a type miekg knows but rr_text does not format (DNSKEY) keeps its header and shows RFC 3597 rdata (documented difference)", () => {
    const msg = packet.decode(packet.encode({ type: "response", id: 1, answers: [{ type: "DNSKEY", name: "example.com", ttl: 60, data: { flags: 257, algorithm: 8, key: Buffer.from([1, 2, 3]) } } as Answer] }));
    expect(msg.answers!.map(rrText)).toEqual(["example.com.\t60\tIN\tDNSKEY\t\\# 7 01010308010203"]);
  });
});
