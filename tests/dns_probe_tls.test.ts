/**
 * The dns kind over DNS over TLS (RFC 7858) against the test server's DoT listener
 * (tests/helpers/dns_server.ts, certificates of tests/helpers/certs.ts): tls_config's CA,
 * insecure_skip_verify and server_name as blackbox uses them (server name defaults to the target's
 * host), TLS facts in the result, a handshake that never completes, and the default ports 53 and
 * 853 on a loopback address of their own.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";
import net from "node:net";
import { dnsKind } from "../lib/probes/dns/kind.ts";
import { DnsProber } from "../lib/probes/dns/prober.ts";
import type { DnsResult } from "../lib/rpc/gen/probermesh/v1/dns_pb.ts";
import { makeCerts, type TestCerts } from "./helpers/certs.ts";
import { startDnsServer, type DnsTestServer } from "./helpers/dns_server.ts";

let certs: TestCerts;
let srv: DnsTestServer;
const prober = new DnsProber();

beforeAll(async () => {
  certs = await makeCerts();
  srv = await startDnsServer("127.0.0.1", { certs: { cert: certs.serverCert, key: certs.serverKey } });
});
afterAll(async () => {
  await srv.close();
});

const probe = (keys: Record<string, unknown>, address = `127.0.0.1:${srv.tlsPort}`): Promise<DnsResult> =>
  prober.probe(dnsKind.target("r1", address, dnsKind.moduleSchema(certs.dir).parse({ query_name: "example.com", query_type: "A", dns_over_tls: true, ...keys })));

const verdict = (r: DnsResult) => ({ success: r.success, failedReason: r.failedReason });

describe("dns_over_tls", () => {
  test("with the CA: the query arrives over TLS; tls_version, tls_seconds and the earliest certificate expiry of the chain are reported", async () => {
    const r = await probe({ tls_config: { ca_file: "ca.pem" } });
    expect({ ...verdict(r), error: r.error }).toEqual({ success: true, failedReason: "", error: "" });
    expect(srv.queries.at(-1)).toMatchObject({ transport: "tls", qtype: 1, name: "example.com" });
    expect(r.tlsVersion).toBe("TLSv1.3");
    expect(r.connectSeconds).toBeGreaterThan(0);
    expect(r.tlsSeconds).toBeGreaterThan(0);
    const notAfter = (f: string) => Math.floor(new X509Certificate(readFileSync(f)).validToDate.getTime() / 1000);
    expect(r.sslEarliestCertExpiry).toBe(BigInt(Math.min(notAfter(certs.serverCert), notAfter(certs.caFile))));
    expect({ rcode: r.rcode, answer: r.answerRrs }).toEqual({ rcode: "NOERROR", answer: 2 });
  });

  test("transport_protocol tcp written out (as blackbox requires) is the same; left out, dns_over_tls implies tcp", async () => {
    expect((await probe({ transport_protocol: "tcp", tls_config: { ca_file: "ca.pem" } })).success).toBe(true);
    expect(dnsKind.moduleSchema("/").parse({ query_name: "a", dns_over_tls: true }).transportProtocol).toBe("tcp");
  });

  test("without a CA the test certificate is not trusted (system roots): tls", async () => {
    const r = await probe({});
    expect(verdict(r)).toEqual({ success: false, failedReason: "tls" });
    expect(r.error).toMatch(/self.signed|unable to (get|verify)/i);
  });

  test("a CA that did not sign the certificate: tls", async () => {
    expect(verdict(await probe({ tls_config: { ca_file: certs.otherCaFile } }))).toEqual({ success: false, failedReason: "tls" });
  });

  test("insecure_skip_verify accepts the untrusted certificate", async () => {
    const r = await probe({ tls_config: { insecure_skip_verify: true } });
    expect({ ...verdict(r), tls: r.tlsVersion }).toEqual({ success: true, failedReason: "", tls: "TLSv1.3" });
  });

  test("server_name: a name the certificate does not hold fails as tls; one it holds passes against an IP target", async () => {
    const before = srv.queries.length;
    const wrong = await probe({ tls_config: { ca_file: "ca.pem", server_name: "wrong.example" } });
    expect(verdict(wrong)).toEqual({ success: false, failedReason: "tls" });
    expect(wrong.error).toMatch(/wrong\.example|altnames|does not match/i);
    expect(srv.queries.length).toBe(before); // refused before the query was written
    expect((await probe({ tls_config: { ca_file: "ca.pem", server_name: "localhost" } })).success).toBe(true);
    expect(srv.queries.at(-1)).toMatchObject({ transport: "tls", sni: "localhost" });
  });

  test("the target's host name is the default server name (blackbox): localhost is in the certificate", async () => {
    const r = await probe({ tls_config: { ca_file: "ca.pem" }, preferred_ip_protocol: "ip4" }, `localhost:${srv.tlsPort}`);
    expect({ ...verdict(r), error: r.error }).toEqual({ success: true, failedReason: "", error: "" });
    expect(srv.queries.at(-1)).toMatchObject({ transport: "tls", sni: "localhost" });
    // An IP target is checked against the certificate's IP addresses, without SNI (RFC 6066 section 3).
    expect((await probe({ tls_config: { ca_file: "ca.pem" } })).success).toBe(true);
    expect(srv.queries.at(-1)).toMatchObject({ transport: "tls", sni: false });
  });

  test("tls_config max_version TLS12 caps the negotiated version", async () => {
    const r = await probe({ tls_config: { ca_file: "ca.pem", max_version: "TLS12" } });
    expect({ ...verdict(r), tls: r.tlsVersion }).toEqual({ success: true, failedReason: "", tls: "TLSv1.2" });
  });

  test("a server that accepts TCP and never speaks TLS: timeout in the handshake", async () => {
    const open = new Set<net.Socket>();
    const mute = net.createServer((c) => open.add(c.on("error", () => {})));
    await new Promise<void>((r) => mute.listen(0, "127.0.0.1", r));
    try {
      const r = await probe({ timeout: "300ms", tls_config: { insecure_skip_verify: true } }, `127.0.0.1:${(mute.address() as net.AddressInfo).port}`);
      expect({ ...verdict(r), error: r.error }).toEqual({ success: false, failedReason: "timeout", error: "timed out in the TLS handshake" });
      expect(r.connectSeconds).toBeGreaterThan(0);
    } finally {
      for (const c of open) c.destroy();
      await new Promise((r) => mute.close(r));
    }
  });
});

describe("default ports (blackbox: 53, 853 with dns_over_tls) on a loopback address of their own", () => {
  test("a target without a port goes to 53 over udp and tcp, and to 853 with dns_over_tls", async () => {
    const host = "127.0.0.5";
    const s = await startDnsServer(host, { port: 53, certs: { cert: certs.serverCert, key: certs.serverKey }, tlsPort: 853 });
    try {
      const plain = (transport: string) => prober.probe(dnsKind.target("r1", host, dnsKind.moduleSchema("/").parse({ query_name: "example.com", query_type: "A", transport_protocol: transport })));
      expect((await plain("udp")).success).toBe(true);
      expect(s.queries.at(-1)?.transport).toBe("udp");
      expect((await plain("tcp")).success).toBe(true);
      expect(s.queries.at(-1)?.transport).toBe("tcp");
      const r = await probe({ tls_config: { insecure_skip_verify: true } }, host);
      expect({ ...verdict(r), error: r.error }).toEqual({ success: true, failedReason: "", error: "" });
      expect(s.queries.at(-1)?.transport).toBe("tls");
    } finally {
      await s.close();
    }
  });
});
