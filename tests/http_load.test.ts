/**
 * The HTTP prober under an agent's load: bounded concurrency (the agent's HTTP_CONCURRENCY), a
 * hanging server among many good ones, and no socket / file-descriptor leak over many rounds with
 * every kind of failure in the mix (HTTP/1.1 and HTTP/2, direct and through proxies), and aborts.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { create } from "@bufbuild/protobuf";
import { readdirSync, readFileSync } from "node:fs";
import http2 from "node:http2";
import pLimit from "p-limit";
import { HTTP_CONCURRENCY } from "../lib/agent/kinds.ts";
import { HttpPhaseProber } from "../lib/probes/http/prober.ts";
import { HttpTargetSchema, type HttpTarget } from "../lib/rpc/gen/probermesh/v1/http_pb.ts";
import { httpKind } from "../lib/probes/http/kind.ts";
import { makeCerts } from "./helpers/certs.ts";
import { startTestServers, type TestServers } from "./helpers/http_servers.ts";
import { startProxy } from "./helpers/proxy.ts";

let srv: TestServers;
beforeAll(async () => {
  srv = await startTestServers();
});
afterAll(() => srv.close());

const prober = new HttpPhaseProber();
const target = (url: string, timeout = "2s"): HttpTarget =>
  create(HttpTargetSchema, { targetRegion: "b", url, module: httpKind.moduleSchema("/").parse({ timeout, tls_config: { ca_file: srv.caFile } }) });

/** Runs one round the way the agent does: all targets at once, HTTP_CONCURRENCY at a time; completion times in ms. */
async function round(targets: HttpTarget[]) {
  const limit = pLimit(HTTP_CONCURRENCY);
  const t0 = performance.now();
  return Promise.all(targets.map((t) => limit(async () => ({ r: await prober.probe(t), doneMs: performance.now() - t0 }))));
}

test("a hanging server never delays the other targets of the round", async () => {
  const good = Array.from({ length: 300 }, (_, i) => target(`http://127.0.0.1:${srv.httpPort}/ok?i=${i}`));
  const out = await round([target(`http://127.0.0.1:${srv.httpPort}/hang`, "2s"), ...good]);
  const [hang, ...rest] = out;
  expect(hang!.r.failedReason).toBe("timeout");
  expect(hang!.doneMs).toBeGreaterThan(1900);
  for (const x of rest) expect(x.r.success).toBe(true);
  // Every good target is done before the hanging one gives up: none waited for it.
  expect(Math.max(...rest.map((x) => x.doneMs))).toBeLessThan(hang!.doneMs);
});

test("no file descriptor leak over 40 rounds of successes, timeouts, refusals, TLS and truncated bodies", async () => {
  const mix = [
    ...Array.from({ length: 100 }, (_, i) => target(`http://127.0.0.1:${srv.httpPort}/ok?i=${i}`)),
    ...Array.from({ length: 20 }, () => target(`https://localhost:${srv.httpsPort}/ok`)),
    ...Array.from({ length: 20 }, () => target(`https://127.0.0.1:${srv.httpsPort}/ok`)), // tls failure (no IP SAN)
    ...Array.from({ length: 10 }, () => target(`http://127.0.0.1:${srv.httpPort}/hang`, "200ms")),
    ...Array.from({ length: 10 }, () => target(`http://127.0.0.1:${srv.httpPort}/close-mid-body`)),
    ...Array.from({ length: 10 }, () => target(`http://127.0.0.1:1/refused`)),
  ];
  const fds = () => readdirSync("/proc/self/fd").length;
  let after5 = 0;
  for (let k = 1; k <= 40; k++) {
    const out = await round(mix);
    const reasons = new Map<string, number>();
    for (const { r } of out) reasons.set(r.failedReason || "ok", (reasons.get(r.failedReason || "ok") ?? 0) + 1);
    expect(Object.fromEntries(reasons)).toEqual({ ok: 120, tls: 20, timeout: 10, http_protocol: 10, connect: 10 });
    await Bun.sleep(20); // let closed sockets be reaped
    if (k === 5) after5 = fds();
  }
  expect(fds()).toBeLessThanOrEqual(after5);
}, 120_000);

test("no file descriptor leak with HTTP/2, proxies, decoding failures, body limits and aborted probes", async () => {
  const c = await makeCerts();
  const h2 = http2.createSecureServer({ key: readFileSync(c.serverKey), cert: readFileSync(c.serverCert), allowHTTP1: true }, (req, res) => (req.url === "/hang" ? undefined : res.end("x".repeat(4096))));
  await new Promise<void>((r) => h2.listen(0, "127.0.0.1", r));
  const proxy = await startProxy({ socks: true });
  try {
    const h2url = `https://localhost:${(h2.address() as { port: number }).port}`;
    const t = (url: string, keys: Record<string, unknown>) => create(HttpTargetSchema, { targetRegion: "b", url, module: httpKind.moduleSchema("/").parse({ timeout: "2s", ...keys }) });
    const ca = { tls_config: { ca_file: c.caFile } };
    const mix = [
      ...Array.from({ length: 20 }, () => t(`${h2url}/ok`, ca)),
      ...Array.from({ length: 10 }, () => t(`${h2url}/ok`, { ...ca, body_size_limit: 100 })),
      ...Array.from({ length: 10 }, () => t(`${h2url}/hang`, { ...ca, timeout: "200ms" })),
      ...Array.from({ length: 10 }, () => t(`https://localhost:${srv.httpsPort}/ok`, { tls_config: { ca_file: srv.caFile }, proxy_url: `http://127.0.0.1:${proxy.port}` })),
      ...Array.from({ length: 10 }, () => t(`http://127.0.0.1:${srv.httpPort}/ok`, { proxy_url: `socks5://127.0.0.1:${proxy.socksPort}` })),
      ...Array.from({ length: 10 }, () => t(`http://127.0.0.1:${srv.httpPort}/gzip?lie=1`, { compression: "gzip" })),
    ];
    const fds = () => readdirSync("/proc/self/fd").length;
    let after3 = 0;
    for (let k = 1; k <= 15; k++) {
      const out = await round(mix);
      const aborter = new AbortController();
      const aborted = prober.probe(t(`${h2url}/hang`, ca), aborter.signal);
      setTimeout(() => aborter.abort(), 20);
      const reasons = new Map<string, number>();
      for (const { r } of [...out, { r: await aborted }]) reasons.set(r.failedReason || "ok", (reasons.get(r.failedReason || "ok") ?? 0) + 1);
      expect(Object.fromEntries(reasons)).toEqual({ ok: 40, body_size_limit: 10, timeout: 11, compression: 10 });
      await Bun.sleep(20);
      if (k === 3) after3 = fds();
    }
    expect(fds()).toBeLessThanOrEqual(after3);
  } finally {
    h2.close();
    proxy.close();
  }
}, 120_000);

test("an abort ends a probe at once, whatever it waits for, with the phases it completed", async () => {
  for (const url of [`http://127.0.0.1:${srv.httpPort}/hang`, `https://localhost:${srv.httpsPort}/hang`]) {
    const aborter = new AbortController();
    const pending = prober.probe(target(url, "60s"), aborter.signal);
    await Bun.sleep(100);
    aborter.abort();
    const r = await pending;
    expect([r.failedReason, r.error]).toEqual(["timeout", "aborted"]);
    expect(r.connectSeconds).toBeGreaterThan(0);
    expect(r.durationSeconds).toBeLessThan(60);
  }
});
