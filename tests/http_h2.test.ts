/**
 * HTTP/2 and TLS options of the HTTP probe against real local servers: node:http2
 * createSecureServer (ALPN h2 and http/1.1), an HTTPS server that speaks HTTP/1.1 only, and TLS
 * servers that demand a client certificate or cap the TLS version (certificates from
 * tests/helpers/certs.ts). enable_http2 (ALPN), the five phases under HTTP/2, valid_http_versions
 * "HTTP/2.0", the other options over HTTP/2 (POST body, Host as :authority, compression,
 * body_size_limit, interim answers, redirects), client certificates and min/max_version.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import https from "node:https";
import http2 from "node:http2";
import type net from "node:net";
import { readFileSync } from "node:fs";
import zlib from "node:zlib";
import { makeCerts, type TestCerts } from "./helpers/certs.ts";
import { probeWithKeys, reasonOf } from "./helpers/http_servers.ts";

const DELAY_MS = 150;
let c: TestCerts;
let h2srv: http2.Http2SecureServer;
let h1srv: https.Server;
let mtls: http2.Http2SecureServer;
let tls12: https.Server;
const ports = { h2: 0, h1: 0, mtls: 0, tls12: 0 };

/** Routes of the HTTP/2 server (HTTP/1.1 too, allowHTTP1): answers name the version it spoke. */
function h2handler(req: http2.Http2ServerRequest, res: http2.Http2ServerResponse): void {
  const u = new URL(req.url, "https://x");
  const parts: Buffer[] = [];
  req.on("data", (d: Buffer) => parts.push(d));
  req.on("end", () => {
    if (u.pathname === "/slow") setTimeout(() => res.end(`slow ${req.httpVersion}`), DELAY_MS);
    else if (u.pathname === "/stream") {
      res.write("first ");
      setTimeout(() => res.end("second"), 100);
    } else if (u.pathname === "/echo") {
      res.setHeader("content-type", "application/json");
      res.end(JSON.stringify({ method: req.method, version: req.httpVersion, authority: req.headers[":authority"] ?? req.headers.host, body: Buffer.concat(parts).toString(), ua: req.headers["user-agent"], te: req.headers["x-extra"] }));
    } else if (u.pathname === "/gzip") {
      res.setHeader("content-encoding", "gzip");
      res.end(zlib.gzipSync("h2 compressed text"));
    } else if (u.pathname === "/interim") {
      res.writeEarlyHints({ link: "</a.css>; rel=preload" });
      res.end("final");
    } else if (u.pathname === "/redirect") {
      res.writeHead(302, { location: "/slow" });
      res.end();
    } else res.end(`ok ${req.httpVersion}`);
  });
}

beforeAll(async () => {
  c = await makeCerts();
  const key = readFileSync(c.serverKey);
  const cert = readFileSync(c.serverCert);
  h2srv = http2.createSecureServer({ key, cert, allowHTTP1: true }, h2handler);
  h1srv = https.createServer({ key, cert }, (req, res) => res.end(`ok ${req.httpVersion}`));
  mtls = http2.createSecureServer({ key, cert, allowHTTP1: true, requestCert: true, rejectUnauthorized: true, ca: readFileSync(c.caFile) }, h2handler);
  tls12 = https.createServer({ key, cert, maxVersion: "TLSv1.2" }, (_req, res) => res.end("ok"));
  for (const [name, s] of [["h2", h2srv], ["h1", h1srv], ["mtls", mtls], ["tls12", tls12]] as const) {
    await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
    ports[name] = ((s as net.Server).address() as net.AddressInfo).port;
  }
});
afterAll(() => {
  for (const s of [h2srv, h1srv, mtls, tls12]) s.close();
});

const ca = () => ({ ca_file: c.caFile });
const url = (port: number, path = "/ok") => `https://localhost:${port}${path}`;

describe("enable_http2", () => {
  test("on by default: ALPN h2, http_version HTTP/2.0, and valid_http_versions can ask for it", async () => {
    const r = await probeWithKeys(url(ports.h2), { tls_config: ca(), fail_if_body_not_matches_regexp: ["^ok 2\\.0$"] });
    expect([reasonOf(r), r.httpVersion, r.statusCode]).toEqual(["ok", "HTTP/2.0", 200]);
    expect(reasonOf(await probeWithKeys(url(ports.h2), { tls_config: ca(), valid_http_versions: ["HTTP/2.0"] }))).toBe("ok");
    expect(reasonOf(await probeWithKeys(url(ports.h2), { tls_config: ca(), valid_http_versions: ["HTTP/1.1"] }))).toBe("http_version");
  });

  test("enable_http2: false offers http/1.1 only; a server without h2 answers HTTP/1.1 either way; plain http stays HTTP/1.1", async () => {
    const off = await probeWithKeys(url(ports.h2), { tls_config: ca(), enable_http2: false, fail_if_body_not_matches_regexp: ["^ok 1\\.1$"] });
    expect([reasonOf(off), off.httpVersion]).toEqual(["ok", "HTTP/1.1"]);
    const h1 = await probeWithKeys(url(ports.h1), { tls_config: ca() });
    expect([reasonOf(h1), h1.httpVersion]).toEqual(["ok", "HTTP/1.1"]);
  });

  test("the five phases under HTTP/2: the server's delay is processing, a streamed body is transfer", async () => {
    const t0 = performance.now();
    const r = await probeWithKeys(url(ports.h2, "/slow"), { tls_config: ca() });
    const wall = (performance.now() - t0) / 1000;
    expect([reasonOf(r), r.httpVersion]).toEqual(["ok", "HTTP/2.0"]);
    expect(r.connectSeconds).toBeGreaterThan(0);
    expect(r.tlsSeconds).toBeGreaterThan(0);
    expect(r.processingSeconds).toBeGreaterThanOrEqual(DELAY_MS / 1000 - 0.002);
    expect(r.resolveSeconds + r.connectSeconds + r.tlsSeconds + r.processingSeconds + r.transferSeconds).toBeLessThanOrEqual(wall);
    const s = await probeWithKeys(url(ports.h2, "/stream"), { tls_config: ca(), fail_if_body_not_matches_regexp: ["^first second$"] });
    expect(reasonOf(s)).toBe("ok");
    expect(s.transferSeconds).toBeGreaterThan(0);
    expect(s.processingSeconds + s.transferSeconds).toBeGreaterThanOrEqual(0.1 - 0.002);
  });

  test("over HTTP/2: POST body, Host header as :authority, User-Agent, compression, body_size_limit, 103, redirects", async () => {
    const cel = "body.method == 'POST' && body.version == '2.0' && body.authority == 'vhost.test' && body.body == 'a=1' && body.ua == 'probe/2'";
    expect(reasonOf(await probeWithKeys(url(ports.h2, "/echo"), { tls_config: { ...ca(), server_name: "localhost" }, method: "POST", body: "a=1", headers: { Host: "vhost.test", "User-Agent": "probe/2", Connection: "close" }, fail_if_body_json_not_matches_cel: cel }))).toBe("ok");
    const z = await probeWithKeys(url(ports.h2, "/gzip"), { tls_config: ca(), compression: "gzip", fail_if_body_not_matches_regexp: ["^h2 compressed text$"] });
    expect([reasonOf(z), z.httpVersion, z.uncompressedBodyLength]).toEqual(["ok", "HTTP/2.0", 18n]);
    expect(reasonOf(await probeWithKeys(url(ports.h2, "/gzip"), { tls_config: ca(), compression: "gzip", body_size_limit: 10 }))).toBe("body_size_limit");
    const i = await probeWithKeys(url(ports.h2, "/interim"), { tls_config: ca(), fail_if_body_not_matches_regexp: ["^final$"] });
    expect([reasonOf(i), i.statusCode]).toEqual(["ok", 200]);
    const rd = await probeWithKeys(url(ports.h2, "/redirect"), { tls_config: ca() });
    expect([reasonOf(rd), rd.redirects, rd.httpVersion]).toEqual(["ok", 1, "HTTP/2.0"]);
  });
});

describe("tls_config", () => {
  test("a client certificate (cert_file, key_file) for a server that demands one, over HTTP/2 and HTTP/1.1", async () => {
    const without = await probeWithKeys(url(ports.mtls), { tls_config: ca() });
    expect(reasonOf(without)).toBe("tls");
    for (const enable_http2 of [true, false]) {
      const r = await probeWithKeys(url(ports.mtls), { enable_http2, tls_config: { ...ca(), cert_file: c.clientCert, key_file: c.clientKey } });
      expect({ enable_http2, reason: reasonOf(r), version: r.httpVersion }).toEqual({ enable_http2, reason: "ok", version: enable_http2 ? "HTTP/2.0" : "HTTP/1.1" });
    }
    // A certificate of another CA: under TLS 1.2 the server refuses it inside the handshake (tls);
    // under TLS 1.3 after it, and Bun's server then closes without an alert the client can read.
    const stranger = { ...ca(), cert_file: c.otherClientCert, key_file: c.otherClientKey };
    expect(reasonOf(await probeWithKeys(url(ports.mtls), { tls_config: { ...stranger, max_version: "TLS12" } }))).toBe("tls");
    expect((await probeWithKeys(url(ports.mtls), { tls_config: stranger })).success).toBe(false);
  });

  test("min_version and max_version", async () => {
    const capped = await probeWithKeys(url(ports.tls12), { tls_config: ca() });
    expect([reasonOf(capped), capped.tlsVersion]).toEqual(["ok", "TLSv1.2"]);
    expect(reasonOf(await probeWithKeys(url(ports.tls12), { tls_config: { ...ca(), min_version: "TLS13" } }))).toBe("tls");
    const max = await probeWithKeys(url(ports.h2), { tls_config: { ...ca(), max_version: "TLS12" } });
    expect([reasonOf(max), max.tlsVersion, max.httpVersion]).toEqual(["ok", "TLSv1.2", "HTTP/2.0"]);
    const min = await probeWithKeys(url(ports.h2), { tls_config: { ...ca(), min_version: "TLS13" } });
    expect([reasonOf(min), min.tlsVersion]).toEqual(["ok", "TLSv1.3"]);
  });
});
