/**
 * The grpc probe against real local gRPC health servers (tests/helpers/grpc_server.ts) on
 * 127.0.0.1 and ::1: modules written as YAML (the `grpc:` block of a probe file), parsed by the
 * kind's module schema (files read there), probed by GrpcProber.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { lookup } from "node:dns/promises";
import http2 from "node:http2";
import net from "node:net";
import { create } from "@bufbuild/protobuf";
import { parse } from "yaml";
import { grpcKind } from "../lib/probes/grpc/kind.ts";
import { GrpcProber } from "../lib/probes/grpc/prober.ts";
import { GrpcTargetSchema, type GrpcResult } from "../lib/rpc/gen/probermesh/v1/grpc_pb.ts";
import { makeCerts, type TestCerts } from "./helpers/certs.ts";
import { closedPort, grpcReply, ServingStatus, startH2Server, startHealthServer, startRawServer, type RunningServer } from "./helpers/grpc_server.ts";

const prober = new GrpcProber();
let certs: TestCerts;
const servers: RunningServer[] = [];
/** Started once: h2c and TLS health servers with services ok / down / unknown-status. */
let h2c: RunningServer;
let h2tls: RunningServer;

const STATUSES = { "": ServingStatus.SERVING, ok: ServingStatus.SERVING, down: ServingStatus.NOT_SERVING, unsure: ServingStatus.UNKNOWN };

beforeAll(async () => {
  certs = await makeCerts();
  const pem = (f: string) => readFileSync(f, "utf8");
  h2c = await startHealthServer({ statuses: STATUSES });
  h2tls = await startHealthServer({ statuses: STATUSES, tls: { cert: pem(certs.serverCert), key: pem(certs.serverKey) } });
  servers.push(h2c, h2tls);
});
afterAll(async () => {
  await Promise.all(servers.map((s) => s.close()));
});

async function start(p: Promise<RunningServer>): Promise<RunningServer> {
  const s = await p;
  servers.push(s);
  return s;
}

/** Probes `address` with the module written as YAML. */
function probeWith(address: string, moduleYaml = "{}", signal?: AbortSignal): Promise<GrpcResult> {
  const module = grpcKind.moduleSchema(certs.dir).parse(parse(moduleYaml) ?? {});
  return prober.probe(create(GrpcTargetSchema, { targetRegion: "r", address, module }), signal);
}

const reasonOf = (r: GrpcResult) => (r.success ? "ok" : r.failedReason);
const TLS_CA = () => `tls: true\ntls_config: {ca_file: "${certs.caFile}"}`;

describe("health check over h2c", () => {
  test("SERVING succeeds; phases, status and serving status are reported", async () => {
    const r = await probeWith(`127.0.0.1:${h2c.port}`, "service: ok");
    expect([reasonOf(r), r.error, r.grpcStatusCode, r.servingStatus]).toEqual(["ok", "", 0, "SERVING"]);
    expect(r.connectSeconds).toBeGreaterThan(0);
    expect(r.checkSeconds).toBeGreaterThan(0);
    expect([r.tlsSeconds, r.tlsVersion, r.sslEarliestCertExpiry]).toEqual([0, "", 0n]);
    expect(r.durationSeconds).toBeGreaterThanOrEqual(r.resolveSeconds + r.connectSeconds + r.tlsSeconds + r.checkSeconds);
    expect(h2c.services.at(-1)).toBe("ok");
  });

  test('service "" asks for the server as a whole', async () => {
    const r = await probeWith(`127.0.0.1:${h2c.port}`);
    expect([reasonOf(r), r.servingStatus]).toEqual(["ok", "SERVING"]);
    expect(h2c.services.at(-1)).toBe("");
  });

  test("NOT_SERVING and UNKNOWN fail not_serving with grpc-status 0", async () => {
    const down = await probeWith(`127.0.0.1:${h2c.port}`, "service: down");
    expect([reasonOf(down), down.grpcStatusCode, down.servingStatus, down.error]).toEqual(["not_serving", 0, "NOT_SERVING", 'service "down" is NOT_SERVING']);
    const unsure = await probeWith(`127.0.0.1:${h2c.port}`, "service: unsure");
    expect([reasonOf(unsure), unsure.servingStatus]).toEqual(["not_serving", "UNKNOWN"]);
  });

  test("an unknown service fails grpc_status 5 NOT_FOUND", async () => {
    const r = await probeWith(`127.0.0.1:${h2c.port}`, "service: nope");
    expect([reasonOf(r), r.grpcStatusCode, r.servingStatus, r.error]).toEqual(["grpc_status", 5, "", "grpc-status 5 NOT_FOUND: unknown service"]);
  });

  test("a server without the health service fails grpc_status 12 UNIMPLEMENTED", async () => {
    const s = await start(startHealthServer({ health: false }));
    const r = await probeWith(`127.0.0.1:${s.port}`, "service: ok");
    expect([reasonOf(r), r.grpcStatusCode]).toEqual(["grpc_status", 12]);
    expect(r.error).toContain("UNIMPLEMENTED");
  });

  test("an HTTP/2 answer that is not gRPC (404, no grpc-status) fails protocol, status mapped to 12", async () => {
    const s = await start(startHealthServer({ health: false, notFound404: true }));
    const r = await probeWith(`127.0.0.1:${s.port}`);
    expect([reasonOf(r), r.grpcStatusCode, r.error]).toEqual(["protocol", 12, "not a gRPC response: HTTP status 404"]);
  });

  test("the request is gRPC: path, content-type, te, grpc-timeout, :authority; metadata sent (-bin base64)", async () => {
    const r = await probeWith(`127.0.0.1:${h2c.port}`, 'timeout: 5s\nmetadata: {X-Team: [a, b], trace-bin: ["test"], authorization: ["Bearer t"]}');
    expect(reasonOf(r)).toBe("ok");
    const h = h2c.calls.at(-1)!;
    expect([h[":path"], h[":method"], h["content-type"], h.te, h[":authority"]]).toEqual(["/grpc.health.v1.Health/Check", "POST", "application/grpc", "trailers", `127.0.0.1:${h2c.port}`]);
    expect(h["grpc-timeout"]).toMatch(/^\d+m$/);
    expect(Number(h["grpc-timeout"]!.toString().slice(0, -1))).toBeLessThanOrEqual(5000);
    expect(h["x-team"]).toBe("a, b");
    expect(h["trace-bin"]).toBe("dGVzdA"); // base64("test") without padding, as grpc-go
    expect(h.authorization).toBe("Bearer t");
  });

  test("connection refused fails connect (14 UNAVAILABLE)", async () => {
    const r = await probeWith(`127.0.0.1:${await closedPort()}`);
    expect([reasonOf(r), r.grpcStatusCode, r.checkSeconds]).toEqual(["connect", 14, 0]);
  });

  test("a silent server (accepts, never answers) times out (4 DEADLINE_EXCEEDED), connect phase kept", async () => {
    const s = await start(startRawServer(() => {}));
    const r = await probeWith(`127.0.0.1:${s.port}`, "timeout: 500ms");
    expect([reasonOf(r), r.grpcStatusCode, r.error]).toEqual(["timeout", 4, "timed out waiting for the response"]);
    expect(r.connectSeconds).toBeGreaterThan(0);
    expect(r.durationSeconds).toBeGreaterThanOrEqual(0.5);
  });

  test("a silent TLS server (never finishes the handshake) times out in tls", async () => {
    const s = await start(startRawServer(() => {}));
    const r = await probeWith(`127.0.0.1:${s.port}`, "timeout: 500ms\ntls: true");
    expect([reasonOf(r), r.error]).toEqual(["timeout", "timed out waiting for tls"]);
  });

  test("an HTTP/1.1 server on plain TCP fails protocol", async () => {
    const s = await start(startRawServer((sock) => sock.once("data", () => sock.end("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"))));
    const r = await probeWith(`127.0.0.1:${s.port}`, "timeout: 5s");
    expect([reasonOf(r), r.grpcStatusCode]).toEqual(["protocol", 14]);
  });

  test("a server that closes the connection at once fails protocol", async () => {
    const s = await start(startRawServer((sock) => sock.destroy()));
    const r = await probeWith(`127.0.0.1:${s.port}`, "timeout: 5s");
    expect(reasonOf(r)).toBe("protocol");
  });

  test("abort via signal: fails timeout (1 CANCELLED) at once, before the module's timeout", async () => {
    const s = await start(startRawServer(() => {}));
    const ac = new AbortController();
    const pending = probeWith(`127.0.0.1:${s.port}`, "timeout: 60s", ac.signal);
    setTimeout(() => ac.abort(), 100);
    const r = await pending;
    expect([reasonOf(r), r.error, r.grpcStatusCode]).toEqual(["timeout", "aborted", 1]);
    expect(r.durationSeconds).toBeLessThan(60);
    const pre = new AbortController();
    pre.abort();
    expect(reasonOf(await probeWith(`127.0.0.1:${h2c.port}`, "{}", pre.signal))).toBe("timeout");
  });
});

describe("responses no well-behaved server sends", () => {
  /** A length-prefixed message (flag 0 unless given). */
  const msg = (bytes: number[], flag = 0) => Buffer.from([flag, 0, 0, 0, bytes.length, ...bytes]);
  const SERVING = [0x08, 0x01]; // HealthCheckResponse{status: SERVING}
  const cases: [string, (s: http2.ServerHttp2Stream) => void, string, number, RegExp][] = [
    ["a well-formed answer (the control)", (s) => grpcReply(s, msg(SERVING), { "grpc-status": "0" }), "ok", 0, /^$/],
    ["grpc-status in the response headers but no trailers (not trailers-only)", (s) => { s.respond({ ":status": 200, "content-type": "application/grpc", "grpc-status": "0" }); s.end(msg(SERVING)); }, "protocol", 13, /no grpc-status in trailers/],
    ["grpc-status 0 without a message", (s) => grpcReply(s, Buffer.alloc(0), { "grpc-status": "0" }), "protocol", 13, /0 response messages/],
    ["two messages", (s) => grpcReply(s, Buffer.concat([msg(SERVING), msg(SERVING)]), { "grpc-status": "0" }), "protocol", 13, /2 response messages/],
    ["a message that is not a HealthCheckResponse", (s) => grpcReply(s, msg([0xff, 0xff, 0xff]), { "grpc-status": "0" }), "protocol", 13, /malformed HealthCheckResponse/],
    ["a compressed message nobody asked for", (s) => grpcReply(s, msg(SERVING, 1), { "grpc-status": "0" }), "protocol", 13, /compressed/],
    ["a message cut short", (s) => grpcReply(s, msg(SERVING).subarray(0, 6), { "grpc-status": "0" }), "protocol", 13, /truncated/],
    ["content-type text/html", (s) => { s.respond({ ":status": 200, "content-type": "text/html" }); s.end("<html>"); }, "protocol", 2, /content-type "text\/html"/],
    ["HTTP 503 without grpc-status", (s) => { s.respond({ ":status": 503 }); s.end(); }, "protocol", 14, /HTTP status 503/],
    ["a stream reset by the server", (s) => s.close(http2.constants.NGHTTP2_INTERNAL_ERROR), "protocol", 14, /./],
    ["grpc-status 14 with a percent-encoded message", (s) => grpcReply(s, Buffer.alloc(0), { "grpc-status": "14", "grpc-message": "down%20for%20maintenance%20%E2%9C%93" }), "grpc_status", 14, /^grpc-status 14 UNAVAILABLE: down for maintenance \u2713$/],
    ["a grpc-status outside 0..16 reads as UNKNOWN", (s) => grpcReply(s, Buffer.alloc(0), { "grpc-status": "99" }), "grpc_status", 2, /^grpc-status 2 UNKNOWN/],
    ["a serving status outside the enum", (s) => grpcReply(s, msg([0x08, 0x07]), { "grpc-status": "0" }), "not_serving", 0, /is 7$/],
  ];
  for (const [name, reply, reason, code, error] of cases) {
    test(`${name}: ${reason} (${code})`, async () => {
      const s = await start(startH2Server(reply));
      const r = await probeWith(`127.0.0.1:${s.port}`, "timeout: 5s");
      expect([reasonOf(r), r.grpcStatusCode]).toEqual([reason, code]);
      expect(r.error).toMatch(error);
    });
  }
});

describe("TLS", () => {
  test("TLS with the CA succeeds; version and certificate expiry reported", async () => {
    const r = await probeWith(`localhost:${h2tls.port}`, `${TLS_CA()}\nservice: ok`);
    expect([reasonOf(r), r.servingStatus]).toEqual(["ok", "SERVING"]);
    expect(r.tlsSeconds).toBeGreaterThan(0);
    expect(r.tlsVersion).toMatch(/^TLSv1\.[23]$/);
    // makeCerts' certificates live 2 days: NotAfter within (now, now + 3 days].
    const now = BigInt(Math.floor(Date.now() / 1000));
    expect(r.sslEarliestCertExpiry).toBeGreaterThan(now);
    expect(r.sslEarliestCertExpiry).toBeLessThanOrEqual(now + 3n * 86400n);
    expect(h2tls.calls.at(-1)![":authority"]).toBe(`localhost:${h2tls.port}`);
  });

  test("TLS failures: unknown CA, wrong server_name fail tls; insecure_skip_verify passes", async () => {
    const a = `localhost:${h2tls.port}`;
    expect(reasonOf(await probeWith(a, "tls: true"))).toBe("tls");
    const wrong = await probeWith(a, `tls: true\ntls_config: {ca_file: "${certs.caFile}", server_name: other.test}`);
    expect([reasonOf(wrong), wrong.grpcStatusCode]).toEqual(["tls", 14]);
    expect(reasonOf(await probeWith(a, "tls: true\ntls_config: {insecure_skip_verify: true}"))).toBe("ok");
    expect(reasonOf(await probeWith(a, `tls: true\ntls_config: {ca_file: "${certs.otherCaFile}"}`))).toBe("tls");
  });

  test("plain h2c against the TLS server fails, TLS against the h2c server fails", async () => {
    expect(reasonOf(await probeWith(`127.0.0.1:${h2tls.port}`, "timeout: 5s"))).toBe("protocol");
    expect(reasonOf(await probeWith(`127.0.0.1:${h2c.port}`, "timeout: 5s\ntls: true\ntls_config: {insecure_skip_verify: true}"))).toBe("tls");
  });

  test("min_version / max_version reach the handshake", async () => {
    const a = `localhost:${h2tls.port}`;
    const r12 = await probeWith(a, `tls: true\ntls_config: {ca_file: "${certs.caFile}", max_version: TLS12}`);
    expect([reasonOf(r12), r12.tlsVersion]).toEqual(["ok", "TLSv1.2"]);
    const r13 = await probeWith(a, `tls: true\ntls_config: {ca_file: "${certs.caFile}", min_version: TLS13}`);
    expect([reasonOf(r13), r13.tlsVersion]).toEqual(["ok", "TLSv1.3"]);
  });

  test("a server requiring a client certificate: ok with cert_file/key_file, tls without", async () => {
    const pem = (f: string) => readFileSync(f, "utf8");
    const s = await start(startHealthServer({ tls: { cert: pem(certs.serverCert), key: pem(certs.serverKey), ca: pem(certs.caFile), requireClientCert: true } }));
    const a = `localhost:${s.port}`;
    const withCert = await probeWith(a, `tls: true\ntls_config: {ca_file: "${certs.caFile}", cert_file: "${certs.clientCert}", key_file: "${certs.clientKey}"}`);
    expect([reasonOf(withCert), withCert.servingStatus]).toEqual(["ok", "SERVING"]);
    const without = await probeWith(a, `${TLS_CA()}\ntimeout: 5s`);
    expect([reasonOf(without), without.grpcStatusCode]).toEqual(["tls", 14]);
    // TLS 1.2: the server refuses inside the handshake. (Under TLS 1.3 the refusal comes after the
    // client's handshake: the alert case is `without` above; Bun's test server closes a stranger's
    // connection without an alert, which reads as protocol.)
    const without12 = await probeWith(a, `tls: true\ntimeout: 5s\ntls_config: {ca_file: "${certs.caFile}", max_version: TLS12}`);
    expect([reasonOf(without12), without12.tlsSeconds]).toEqual(["tls", 0]);
    const stranger = await probeWith(a, `tls: true\ntimeout: 5s\ntls_config: {ca_file: "${certs.caFile}", cert_file: "${certs.otherClientCert}", key_file: "${certs.otherClientKey}", max_version: TLS12}`);
    expect(reasonOf(stranger)).toBe("tls");
    expect(s.services).toEqual([""]); // only the probe with the right certificate reached the service
  });

  test("an HTTP/1.1-only TLS server fails protocol (no ALPN h2), certificate still reported", async () => {
    const pem = (f: string) => readFileSync(f, "utf8");
    const reply = (sock: net.Socket) => sock.once("data", () => sock.end("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"));
    // No ALPN at all (a TLS server that never heard of it), and ALPN http/1.1 only.
    for (const ALPNProtocols of [undefined, ["http/1.1"]]) {
      const s = await start(startRawServer(reply, { cert: pem(certs.serverCert), key: pem(certs.serverKey), ALPNProtocols }));
      const r = await probeWith(`localhost:${s.port}`, `${TLS_CA()}\ntimeout: 5s`);
      expect([reasonOf(r), r.grpcStatusCode]).toEqual(["protocol", 14]);
      expect(r.error).toMatch(/ALPN/);
      if (!ALPNProtocols) expect([r.tlsVersion !== "", r.sslEarliestCertExpiry > 0n]).toEqual([true, true]); // the handshake completed
    }
  });
});

describe("addresses", () => {
  test("IPv6: [::1]:port over h2c and TLS (server_name for the certificate)", async () => {
    const pem = (f: string) => readFileSync(f, "utf8");
    const s6 = await start(startHealthServer({ host: "::1", statuses: STATUSES }));
    const r = await probeWith(`[::1]:${s6.port}`, "service: ok");
    expect([reasonOf(r), r.servingStatus]).toEqual(["ok", "SERVING"]);
    expect(s6.calls.at(-1)![":authority"]).toBe(`[::1]:${s6.port}`);
    const t6 = await start(startHealthServer({ host: "::1", tls: { cert: pem(certs.serverCert), key: pem(certs.serverKey) } }));
    expect(reasonOf(await probeWith(`[::1]:${t6.port}`, `tls: true\ntls_config: {ca_file: "${certs.caFile}", server_name: localhost}`))).toBe("ok");
    expect(reasonOf(await probeWith(`[::1]:${t6.port}`, `tls: true\ntls_config: {ca_file: "${certs.caFile}"}`))).toBe("tls"); // no ::1 SAN
  });

  test("preferred_ip_protocol / ip_protocol_fallback pick localhost's address family", async () => {
    // What localhost resolves to depends on /etc/hosts: the expectations follow it.
    const families = new Set((await lookup("localhost", { all: true })).map((a) => a.family));
    const s4 = await start(startHealthServer());
    const a = `localhost:${s4.port}`;
    // The server listens on 127.0.0.1 only: ::1 is refused (nothing listens there on that port).
    expect(reasonOf(await probeWith(a, "preferred_ip_protocol: ip4\nip_protocol_fallback: false"))).toBe(families.has(4) ? "ok" : "resolve");
    const ip6Only = await probeWith(a, "preferred_ip_protocol: ip6\nip_protocol_fallback: false");
    expect(reasonOf(ip6Only)).toBe(families.has(6) ? "connect" : "resolve");
    if (!families.has(6)) expect(ip6Only.error).toBe("no ip6 address for localhost");
    expect(reasonOf(await probeWith(a, "preferred_ip_protocol: ip6\nip_protocol_fallback: true"))).toBe(families.has(6) ? "connect" : "ok");
  });

  test("a name that does not resolve fails resolve (status 0)", async () => {
    const r = await probeWith("no-such-host.invalid:50051", "timeout: 5s");
    expect([reasonOf(r), r.grpcStatusCode, r.connectSeconds]).toEqual(["resolve", 0, 0]);
  });
});

describe("release", () => {
  test("every probe closes its connection: the server sees no connection left open", async () => {
    let open = 0;
    const tracking = await start(startRawServer((sock) => {
      open++;
      sock.on("close", () => open--);
      sock.once("data", () => sock.end("HTTP/1.1 400 Bad Request\r\n\r\n"));
    }));
    for (let i = 0; i < 5; i++) await probeWith(`127.0.0.1:${tracking.port}`, "timeout: 2s");
    const silent = await start(startRawServer((sock) => {
      open++;
      sock.on("close", () => open--);
      sock.resume(); // reads (and drops) what comes, so that the client's FIN is seen
    }));
    for (let i = 0; i < 3; i++) await probeWith(`127.0.0.1:${silent.port}`, "timeout: 200ms");
    for (let i = 0; i < 50 && open > 0; i++) await Bun.sleep(20);
    expect(open).toBe(0);
  });
});
