/**
 * Local HTTP and HTTPS servers for the HTTP probe tests and bench/http.ts (loopback only).
 * HTTPS uses a throw-away CA and a leaf certificate for DNS:localhost and DNS:probe.test (no IP
 * SAN, so https://127.0.0.1 needs tls_config.server_name), made with openssl.
 *
 * Routes (delays in ms from the `ms` query parameter, defaults in brackets):
 *   /ok                 "ok body"
 *   /slow?ms=200        holds the whole response (so the first byte) for ms: processing
 *   /stream?ms=100      "first " now, "second" ms later (chunked): transfer
 *   /redirect/N         302 chain down to /ok
 *   /500                status 500
 *   /hang               never answers
 *   /close-mid-body     promises 100 bytes, sends 10, closes
 *   /auth               200 only with Authorization "Basic dTpw" (u:p) or "Bearer tok", else 401
 *   /headers            sets X-Probe: mesh-1 and Cache-Control: no-store
 *   /big?kb=64          a body of kb KiB
 *   /echo               200, JSON {method, url, headers, body (base64)} of the request it got
 *   /json               {"foo":"bar","baz":"qux","n":1,"items":[{"name":"a"}]} (application/json)
 *   /gzip /br /deflate /deflate-raw   COMPRESSED_TEXT in that coding (Content-Encoding set); ?lie=1
 *                       sends it uncompressed with the same Content-Encoding
 *   /interim?n=2        n interim answers (103 Early Hints, then 100 Continue), then 200 "final"
 *   /to?url=U&code=302  redirect with that code to U (absolute or relative)
 *   /cookie/set         302 to /cookie/check with Set-Cookie: session=abc; Path=/
 *   /cookie/check       200 only when the request carries session=abc, else 403
 *   CONNECT (plain port) 403 Forbidden: a web server is no proxy
 *
 * Two more raw servers (finPort: TCP, finsPort: TLS with the same certificate) answer every
 * request with a chunked body whose first chunk leaves at once and whose last chunk leaves `ms`
 * later (default 90) in the same write as the connection's FIN (`Connection: close`), the way
 * most servers end a response to a prober that asked for `Connection: close`. Each response's
 * send times go to `finLog` (performance.now() ms of this process).
 */
import http from "node:http";
import zlib from "node:zlib";
import https from "node:https";
import net from "node:net";
import tls from "node:tls";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { $ } from "bun";
import { create } from "@bufbuild/protobuf";
import { PROBE_KINDS } from "../../lib/probes/kinds.ts";
import { HttpPhaseProber } from "../../lib/probes/http/prober.ts";
import { HttpTargetSchema, type HttpResult } from "../../lib/rpc/gen/probermesh/v1/http_pb.ts";

/** Running servers and the CA that signed the HTTPS certificate. */
export interface TestServers {
  httpPort: number;
  httpsPort: number;
  /** PEM of the throw-away CA. */
  caPem: string;
  caFile: string;
  /** Raw servers ending the body with the FIN (see above): TCP and TLS ports. */
  finPort: number;
  finsPort: number;
  /** What the FIN servers sent: first byte and last chunk + FIN, performance.now() ms. */
  finLog: { firstMs: number; lastMs: number }[];
  close(): void;
}

/** Answers one request on a raw socket: first chunk now, last chunk + FIN in one write `ms` later. */
function finResponder(log: TestServers["finLog"]) {
  return (sock: net.Socket) => {
    let buf = "";
    sock.on("error", () => sock.destroy());
    sock.on("data", (d) => {
      buf += d.toString("latin1");
      if (!buf.includes("\r\n\r\n")) return;
      sock.removeAllListeners("data");
      const ms = Number(/[?&]ms=(\d+)/.exec(buf)?.[1] ?? 90);
      const first = "first-chunk-";
      sock.write(`HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n${first.length.toString(16)}\r\n${first}\r\n`);
      const entry = { firstMs: performance.now(), lastMs: 0 };
      setTimeout(() => {
        entry.lastMs = performance.now();
        log.push(entry);
        sock.end("4\r\nlast\r\n0\r\n\r\n");
      }, ms);
    });
  };
}

/** The text /gzip, /br, /deflate and /deflate-raw send compressed. */
export const COMPRESSED_TEXT = "hello compressed world ".repeat(20);

const CODINGS: Record<string, [string, (b: Buffer) => Buffer]> = {
  "/gzip": ["gzip", zlib.gzipSync],
  "/br": ["br", zlib.brotliCompressSync],
  "/deflate": ["deflate", zlib.deflateSync],
  "/deflate-raw": ["deflate", zlib.deflateRawSync],
};

/** Answers with the request as JSON (the body read in full first). */
function echo(req: http.IncomingMessage, res: http.ServerResponse): void {
  const parts: Buffer[] = [];
  req.on("data", (d: Buffer) => parts.push(d));
  req.on("end", () => {
    res.writeHead(200, { "Content-Type": "application/json" });
    res.end(JSON.stringify({ method: req.method, url: req.url, headers: req.headers, rawHeaders: req.rawHeaders, body: Buffer.concat(parts).toString("base64") }));
  });
}

function handler(req: http.IncomingMessage, res: http.ServerResponse): void {
  const u = new URL(req.url ?? "/", "http://x");
  const ms = (d: number) => Number(u.searchParams.get("ms") ?? d);
  const p = u.pathname;
  if (p === "/slow") setTimeout(() => res.end("slow body"), ms(200));
  else if (p === "/stream") {
    res.writeHead(200, { "Content-Type": "text/plain" });
    res.write("first ");
    setTimeout(() => res.end("second"), ms(100));
  } else if (p.startsWith("/redirect/")) {
    const n = Number(p.split("/")[2]);
    res.writeHead(302, { Location: n > 0 ? `/redirect/${n - 1}` : "/ok" }).end();
  } else if (p === "/500") res.writeHead(500).end("boom");
  else if (p === "/hang") {
    /* never answers */
  } else if (p === "/close-mid-body") {
    res.writeHead(200, { "Content-Length": "100" });
    res.write("0123456789", () => res.socket?.destroy());
  } else if (p === "/auth") {
    const ok = ["Basic dTpw", "Bearer tok"].includes(req.headers.authorization ?? "");
    res.writeHead(ok ? 200 : 401).end(ok ? "welcome" : "who are you");
  } else if (p === "/headers") res.writeHead(200, { "X-Probe": "mesh-1", "Cache-Control": "no-store" }).end("ok");
  else if (p === "/big") res.end("x".repeat(Number(u.searchParams.get("kb") ?? 64) * 1024));
  else if (p === "/echo") echo(req, res);
  else if (p === "/json") res.writeHead(200, { "Content-Type": "application/json" }).end(JSON.stringify({ foo: "bar", baz: "qux", n: 1, items: [{ name: "a" }] }));
  else if (CODINGS[p]) {
    const [coding, encode] = CODINGS[p]!;
    res.writeHead(200, { "Content-Encoding": coding }).end(u.searchParams.has("lie") ? COMPRESSED_TEXT : encode(Buffer.from(COMPRESSED_TEXT)));
  } else if (p === "/interim") {
    const n = Number(u.searchParams.get("n") ?? 2);
    for (let i = 0; i < n; i++) {
      if (i % 2 === 0) res.writeEarlyHints({ link: "</style.css>; rel=preload" });
      else res.writeContinue();
    }
    res.end("final");
  } else if (p === "/to") res.writeHead(Number(u.searchParams.get("code") ?? 302), { Location: u.searchParams.get("url") ?? "/ok" }).end();
  else if (p === "/cookie/set") res.writeHead(302, { Location: "/cookie/check", "Set-Cookie": "session=abc; Path=/" }).end();
  else if (p === "/cookie/check") {
    const ok = /(^|;\s*)session=abc(;|$)/.test(req.headers.cookie ?? "");
    res.writeHead(ok ? 200 : 403).end(ok ? "cookie ok" : "no cookie");
  }
  else res.end("ok body");
}

/** Starts both servers on 127.0.0.1 (ephemeral ports). */
export async function startTestServers(): Promise<TestServers> {
  const dir = mkdtempSync(`${tmpdir()}/pm-tls-`);
  await $`openssl req -x509 -newkey rsa:2048 -nodes -keyout ${dir}/ca.key -out ${dir}/ca.pem -days 2 -subj /CN=ProberMesh-test-CA`.quiet();
  await $`openssl req -newkey rsa:2048 -nodes -keyout ${dir}/k.pem -out ${dir}/r.csr -subj /CN=localhost`.quiet();
  await Bun.write(`${dir}/ext.cnf`, "subjectAltName=DNS:localhost,DNS:probe.test\n");
  await $`openssl x509 -req -in ${dir}/r.csr -CA ${dir}/ca.pem -CAkey ${dir}/ca.key -CAcreateserial -out ${dir}/c.pem -days 2 -extfile ${dir}/ext.cnf`.quiet();
  const plain = http.createServer(handler);
  plain.on("connect", (_req: http.IncomingMessage, sock: net.Socket) => sock.end("HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n"));
  const secure = https.createServer({ key: readFileSync(`${dir}/k.pem`), cert: readFileSync(`${dir}/c.pem`) }, handler);
  await new Promise<void>((r) => plain.listen(0, "127.0.0.1", r));
  await new Promise<void>((r) => secure.listen(0, "127.0.0.1", r));
  const finLog: TestServers["finLog"] = [];
  const fin = net.createServer(finResponder(finLog));
  const fins = tls.createServer({ key: readFileSync(`${dir}/k.pem`), cert: readFileSync(`${dir}/c.pem`) }, finResponder(finLog));
  await new Promise<void>((r) => fin.listen(0, "127.0.0.1", r));
  await new Promise<void>((r) => fins.listen(0, "127.0.0.1", r));
  return {
    httpPort: (plain.address() as { port: number }).port,
    httpsPort: (secure.address() as { port: number }).port,
    caPem: readFileSync(`${dir}/ca.pem`, "utf8"),
    caFile: `${dir}/ca.pem`,
    finPort: (fin.address() as net.AddressInfo).port,
    finsPort: (fins.address() as net.AddressInfo).port,
    finLog,
    close() {
      for (const s of [plain, secure]) {
        s.closeAllConnections();
        s.close();
      }
      fin.close();
      fins.close();
    },
  };
}

/**
 * Probes `url` once with an `http:` module given as its keys (as written in a probe file, parsed
 * by the kind's schema with files relative to `dir`).
 */
export async function probeWithKeys(url: string, keys: Record<string, unknown>, dir = "/", signal?: AbortSignal): Promise<HttpResult> {
  const module = PROBE_KINDS.http.moduleSchema(dir).parse({ timeout: "5s", ...keys });
  return new HttpPhaseProber().probe(create(HttpTargetSchema, { targetRegion: "t", url, module }), signal);
}

/** "ok", or the failed_reason of a result. */
export const reasonOf = (r: HttpResult) => (r.success ? "ok" : r.failedReason);
