/**
 * lib/rpc/listen.ts deadlines on a kept-alive HTTP/1.1 connection, with a real listener and a raw
 * socket, on deadlines shortened for the test (the shipped ones are LISTENER_TIMEOUTS):
 * - a connection idle between requests for longer than the first request's head deadline is still
 *   served (the agents' heartbeat period is the header deadline's size: when the two were equal,
 *   the server closed the connection just as the next heartbeat reused it);
 * - one idle past the keep-alive deadline is closed by the server;
 * - a second request head that trickles is still cut at that deadline.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import net from "node:net";
import { LISTENER_TIMEOUTS, listenH1H2c, type Listener } from "../lib/rpc/listen.ts";
import { HEARTBEAT_INTERVAL_MS } from "../lib/rpc/heartbeat.ts";

const T = { ...LISTENER_TIMEOUTS, handshakeMs: 2_000, headersMs: 400, keepAliveMs: 2_000 };
let listener: Listener;

beforeAll(async () => {
  listener = await listenH1H2c("127.0.0.1:0", (_req, res) => res.end("ok"), undefined, T);
});
afterAll(() => listener.close());

/** A raw client socket: send text, read whatever comes back, know when the server closed it. */
async function client() {
  const s = net.connect(listener.port, "127.0.0.1");
  await new Promise<void>((r, j) => (s.once("connect", r), s.once("error", j)));
  let buf = "";
  let closed = false;
  s.on("data", (d) => (buf += d.toString()));
  s.on("close", () => (closed = true));
  s.on("error", () => {});
  const answers = () => buf.split("HTTP/1.1 200").length - 1;
  const until = async (what: string, ms: number, ok: () => boolean) => {
    const end = Date.now() + ms;
    while (!ok()) {
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
      await Bun.sleep(20);
    }
  };
  return { s, answers, closed: () => closed, until };
}

const REQ = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";

describe("kept-alive HTTP/1.1 connections", () => {
  test("the shipped keep-alive deadline outlasts the agents' heartbeat period", () => {
    expect(LISTENER_TIMEOUTS.keepAliveMs).toBeGreaterThan(2 * HEARTBEAT_INTERVAL_MS);
  });
  test("a connection idle between requests longer than the head deadline is served again, then closed at the keep-alive deadline", async () => {
    const c = await client();
    c.s.write(REQ);
    await c.until("the first answer", 2_000, () => c.answers() === 1);
    await Bun.sleep(T.headersMs * 2);
    expect(c.closed()).toBe(false);
    c.s.write(REQ);
    await c.until("the second answer on the same connection", 2_000, () => c.answers() === 2);
    await c.until("the server closing the idle connection", T.keepAliveMs + 3_000, () => c.closed());
    c.s.destroy();
  });
  test("a next request head that trickles is cut at the keep-alive deadline", async () => {
    const c = await client();
    c.s.write(REQ);
    await c.until("the first answer", 2_000, () => c.answers() === 1);
    const started = Date.now();
    const trickle = setInterval(() => c.closed() || c.s.write("X-Slow: 1\r\n".slice(0, 1)), 100);
    c.s.write("GET / HTTP/1.1\r\nHost: x\r\n");
    try {
      await c.until("the server cutting the trickling head", T.keepAliveMs + 3_000, () => c.closed());
    } finally {
      clearInterval(trickle);
    }
    expect(c.answers()).toBe(1);
    expect(Date.now() - started).toBeGreaterThanOrEqual(T.keepAliveMs - 200);
    c.s.destroy();
  });
});
