/**
 * The tcp kind's common half: blackbox_exporter's tcp modules (tests/fixtures/blackbox/, copied
 * from its example.yml, blackbox-good.yml and testdata) through the module schema, its validation
 * with the path of the offending key, defaults, redaction of the client key, targets, and the
 * server half (result checks, metrics).
 */
import { drain } from "../lib/steps.ts";
import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { create } from "@bufbuild/protobuf";
import { durationMs, timestampFromMs } from "@bufbuild/protobuf/wkt";
import { parse } from "yaml";
import { SeriesStore } from "../lib/metrics/series.ts";
import { FAILED_REASONS } from "../lib/probes/tcp/failed_reason.ts";
import { checkTcpResult, tcpIngest } from "../lib/probes/tcp/ingest.ts";
import { tcpKind } from "../lib/probes/tcp/kind.ts";
import { TcpResultSchema, type TcpResult } from "../lib/rpc/gen/probermesh/v1/tcp_pb.ts";
import { modulesSchema } from "../lib/targets/modules.ts";
import { makeCerts } from "./helpers/certs.ts";

const DIR = new URL("./fixtures/blackbox/", import.meta.url).pathname;
const schema = tcpKind.moduleSchema(DIR);

/** A blackbox module's tcp section with its module-level timeout moved in, as lib/targets/modules.ts does. */
const section = (m: { timeout?: string; tcp?: Record<string, unknown> | null }) => ({ ...(m.tcp ?? {}), ...(m.timeout ? { timeout: m.timeout } : {}) });

const issues = (input: unknown) => {
  const r = schema.safeParse(input);
  return r.success ? [] : r.error.issues.map((i) => ({ path: i.path.join("."), message: i.message }));
};

describe("blackbox_exporter's tcp modules", () => {
  test("every tcp module of example.yml and blackbox-good.yml is accepted, with its options carried into the protobuf module", async () => {
    const certs = await makeCerts();
    // The rabbitmq modules name a CA file on blackbox's host; ProberMesh reads files at load.
    const text = readFileSync(`${DIR}tcp-example.yml`, "utf8").replaceAll("/etc/blackbox_exporter/CA_cert.crt", certs.caFile);
    const modules = parse(text).modules as Record<string, { prober: string; timeout?: string; tcp?: Record<string, unknown> }>;
    expect(Object.keys(modules)).toHaveLength(13);
    const parsed = Object.fromEntries(Object.entries(modules).map(([name, m]) => [name, schema.parse(section(m))]));

    const smtp = parsed.smtp_starttls!;
    expect(durationMs(smtp.timeout!)).toBe(5000);
    expect(smtp.queryResponse.map((q) => [q.expect ?? null, Buffer.from(q.send).toString(), q.starttls])).toEqual([
      ["^220 ([^ ]+) ESMTP (.+)$", "", false], [null, "EHLO prober\r", false], ["^250-STARTTLS", "", false], [null, "STARTTLS\r", false],
      ["^220", "", false], [null, "", true], [null, "EHLO prober\r", false], ["^250-AUTH", "", false], [null, "QUIT\r", false],
    ]);
    expect(parsed.tls_connect!.tls).toBe(true);
    expect(parsed.rabbitmq!.tlsConfig!.caPem).toContain("BEGIN CERTIFICATE");
    expect(parsed.rabbitmq_insecure!.tlsConfig!.insecureSkipVerify).toBe(true);
    // !!binary send and expect_bytes (postgresql's SSLRequest)
    expect(Buffer.from(parsed.postgresql!.queryResponse[0]!.send)).toEqual(Buffer.from([0, 0, 0, 8, 4, 0xd2, 0x16, 0x2f]));
    expect(Buffer.from(parsed.postgresql!.queryResponse[1]!.expectBytes).toString()).toBe("S");
    expect(parsed.irc_banner!.queryResponse[2]!.expect).toBe("PING :([^ ]+)");
    expect(Buffer.from(parsed.irc_banner!.queryResponse[2]!.send).toString()).toBe("PONG ${1}");
    expect(durationMs(parsed.postgresql!.timeout!)).toBe(10_000);

    // The same file through the probe file's modules: loader (module-level timeout moved in there).
    const all = modulesSchema(DIR).parse(modules);
    expect(Object.values(all).every((m) => m.prober === "tcp")).toBe(true);
  });

  test("invalid-tcp-query-response-regexp.yml is refused at query_response.0.expect, with blackbox's message", () => {
    const modules = parse(readFileSync(`${DIR}invalid-tcp-query-response-regexp.yml`, "utf8")).modules;
    expect(issues(section(modules.tcp_test))).toEqual([{ path: "query_response.0.expect", message: expect.stringContaining('"Could not compile regular expression" regexp=":["') }]);
    const r = modulesSchema(DIR).safeParse(modules);
    expect(r.success ? [] : r.error.issues.map((i) => i.path.join("."))).toEqual(["tcp_test.tcp.query_response.0.expect"]);
  });
});

describe("validation", () => {
  test("each bad key is named", () => {
    expect(issues({ query_response: [{ expect: "a", expect_bytes: "b" }] })).toEqual([{ path: "query_response.0.expect_bytes", message: "expect and expect_bytes are mutually exclusive" }]);
    expect(issues({ query_response: [{ expect: "a", labels: [{ name: "v", value: "${1}" }] }] }).map((i) => i.path)).toEqual(["query_response.0.labels"]);
    expect(issues({ query_response: [{ send: "x", sned: "y" }] }).map((i) => i.path)).toEqual(["query_response.0"]);
    expect(issues({ source_ip_address: "localhost" }).map((i) => i.path)).toEqual(["source_ip_address"]);
    expect(issues({ preferred_ip_protocol: "ipv4" }).map((i) => i.path)).toEqual(["preferred_ip_protocol"]);
    expect(issues({ timeout: "0s" }).map((i) => i.path)).toEqual(["timeout"]);
    expect(issues({ tls_config: { min_version: "TLS13", max_version: "TLS12" } }).map((i) => i.path)).toEqual(["tls_config.min_version"]);
    expect(issues({ tls_config: { ca_file: "no-such-ca.pem" } }).map((i) => i.path)).toEqual(["tls_config.ca_file"]);
    expect(issues({ tls: "yes" }).map((i) => i.path)).toEqual(["tls"]);
    expect(issues({ bogus: 1 }).map((i) => i.path)).toEqual([""]);
  });

  test("defaults, and the options as given", () => {
    const d = tcpKind.defaultModule();
    expect([durationMs(d.timeout!), d.preferredIpProtocol, d.ipProtocolFallback, d.sourceIpAddress, d.tls, d.queryResponse.length]).toEqual([10_000, "ip4", true, "", false, 0]);
    const m = schema.parse({ timeout: "2.5s", preferred_ip_protocol: "ip6", ip_protocol_fallback: false, source_ip_address: "::1", tls: true, query_response: [null, { expect: "" }, { expect: 220, send: 42 }] });
    expect([durationMs(m.timeout!), m.preferredIpProtocol, m.ipProtocolFallback, m.sourceIpAddress, m.tls]).toEqual([2500, "ip6", false, "::1", true]);
    // null step: nothing; `expect: ""` is a regexp matching any line (Go compiles it); numbers are their text, as Go's YAML decoder gives
    expect(m.queryResponse.map((q) => [q.expect ?? null, Buffer.from(q.send).toString()])).toEqual([[null, ""], ["", ""], ["220", "42"]]);
  });

  test("redactModule hides the client key and nothing else", async () => {
    const c = await makeCerts();
    const m = schema.parse({ tls_config: { cert_file: c.clientCert, key_file: c.clientKey, ca_file: c.caFile } });
    expect(m.tlsConfig!.keyPem).toContain("PRIVATE KEY");
    const r = tcpKind.redactModule(m, "<secret>");
    expect(r.tlsConfig!.keyPem).toBe("<secret>");
    expect(r.tlsConfig!.certPem).toBe(m.tlsConfig!.certPem);
    expect(JSON.stringify(tcpKind.moduleJson(r))).not.toContain("PRIVATE KEY");
    expect(m.tlsConfig!.keyPem).toContain("PRIVATE KEY"); // a copy: the module agents get keeps its key
  });
});

describe("targets", () => {
  test("host:port and [v6]:port in canonical form; anything else refused", () => {
    const n = tcpKind.normaliseTarget;
    expect(n("example.com:25")).toBe("example.com:25");
    expect(n("Mail.Example.COM:25")).toBe("mail.example.com:25");
    expect(n("127.0.0.1:0443")).toBe("127.0.0.1:443");
    expect(n("[::1]:22")).toBe("[::1]:22");
    expect(n("[0:0:0:0:0:0:0:1]:22")).toBe("[::1]:22");
    expect(n("[2001:DB8::1]:80")).toBe("[2001:db8::1]:80");
    expect(n("[::ffff:1.2.3.4]:80")).toBe("[::ffff:1.2.3.4]:80");
    expect(n("[fe80::1%eth0]:80")).toBe("[fe80::1%eth0]:80");
    for (const bad of ["example.com", "::1:22", "[::1]", "[1.2.3.4]:80", "[example.com]:80", "host:0", "host:65536", "host:smtp", "a b:1", "http://x:80", ":80", "-x-:80", "[::1]:22x"]) {
      expect({ bad, n: n(bad) }).toEqual({ bad, n: null });
    }
    expect(tcpKind.targetDescription).toBe("host:port");
  });
});

describe("server half", () => {
  const result = (x: Omit<Partial<TcpResult>, "$typeName" | "$unknown"> = {}): TcpResult =>
    create(TcpResultSchema, { targetRegion: "t", address: "h:25", time: timestampFromMs(Date.now()), success: true, durationSeconds: 0.01, connectSeconds: 0.002, tlsSeconds: 0.004, ...x });

  test("checkTcpResult accepts every failed_reason of the list and refuses others", () => {
    expect(checkTcpResult(result())).toBe("");
    for (const reason of FAILED_REASONS) expect(checkTcpResult(result({ success: false, failedReason: reason }))).toBe("");
    expect(checkTcpResult(result({ success: false, failedReason: "query_response" }))).toMatch(/unknown failed_reason/);
    expect(checkTcpResult(result({ success: false }))).toBe("success and failed_reason disagree");
    expect(checkTcpResult(result({ tlsSeconds: -1 }))).toBe("phase out of range");
  });

  test("metrics: phases over successes, failures by reason, the certificate expiry", async () => {
    const store = new SeriesStore(60_000);
    const ingest = tcpIngest(store);
    const w = ingest.openWindow();
    const now = Date.now();
    for (const r of [
      result({ tlsSeconds: 0.002, sslEarliestCertExpiry: 2_000_000_000n }),
      result({ tlsSeconds: 0.004, sslEarliestCertExpiry: 1_900_000_000n }),
      result({ success: false, failedReason: "expect" }),
    ]) {
      ingest.count({ sourceRegion: "s", agentIp: "a", result: r });
      w.add({ sourceRegion: "s", agentIp: "a", result: r });
    }
    drain(w.publish(now + 10));
    const text = await store.metrics();
    const L = 'source_region="s",target_region="t",target_addr="h:25"';
    expect(text).toContain(`prober_tcp_duration_seconds{${L},phase="tls"} 0.003`);
    expect(text).toContain(`prober_tcp_failed{${L},failed_reason="expect"} 1`);
    expect(text).toContain(`prober_tcp_ssl_earliest_cert_expiry{${L}} 1900000000`);
    expect(text).toContain(`prober_tcp_probes_total{${L}} 3`);
  });
});
