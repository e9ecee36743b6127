/**
 * One DNS exchange on a fresh socket, as miekg/dns's Client.Exchange does for blackbox_exporter:
 *
 *   udp  a connected UDP socket (the kernel drops datagrams from other addresses); replies
 *        with another id are ignored while waiting (miekg: "might be responses to earlier
 *        queries that timed out"), an ICMP unreachable is a connect failure
 *   tcp  RFC 1035 section 4.2.2 framing (two-byte length); a reply with another id fails
 *   DoT  tcp inside TLS (RFC 7858)
 *
 * Every wait settles exactly once (first of its outcome, the probe's deadline, the abort signal)
 * and removes its listeners, timer and abort handler; the socket is closed before the exchange
 * returns or throws. Timings are performance.now() differences, written to `times` in seconds.
 */
import { createSocket, type Socket as UdpSocket } from "node:dgram";
import net from "node:net";
import tls from "node:tls";
import { handshakeFacts } from "../tls.ts";
import { ProbeFailure } from "./failed_reason.ts";

/** The probe's deadline (performance.now() milliseconds; Infinity: none) and abort signal. */
export interface Bounds {
  deadline: number;
  signal?: AbortSignal;
}

/** Timings of an exchange, seconds: connect and tls (tcp only), query (written -> complete reply). */
export interface ExchangeTimes {
  connect: number;
  tls: number;
  query: number;
}

/**
 * Waits for one outcome. `arm` registers listeners that call `ok` or `fail` and returns what
 * removes them. Settles once: first of ok, fail, the deadline (ProbeFailure "timeout", "timed out
 * <what>") or the abort (ProbeFailure "timeout", "aborted"); then removes everything.
 */
export function waitOnce<T>(b: Bounds, what: string, arm: (ok: (v: T) => void, fail: (e: Error) => void) => () => void): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let settled = false;
    let disarm: (() => void) | undefined;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const finish = (f: () => void) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      b.signal?.removeEventListener("abort", onAbort);
      disarm?.();
      f();
    };
    const onAbort = () => finish(() => reject(new ProbeFailure("timeout", "aborted")));
    if (b.signal?.aborted) return onAbort();
    b.signal?.addEventListener("abort", onAbort, { once: true });
    if (Number.isFinite(b.deadline)) timer = setTimeout(() => finish(() => reject(new ProbeFailure("timeout", `timed out ${what}`))), Math.max(0, b.deadline - performance.now()));
    const off = arm((v) => finish(() => resolve(v)), (e) => finish(() => reject(e)));
    if (settled) off();
    else disarm = off;
  });
}

const noop = () => {};

/** Where a query goes: the server's IP and port, and the local source address ("" = any). */
export interface Peer {
  ip: string;
  port: number;
  source: string;
}

/**
 * Sends `query` over UDP and waits for the reply `accept` takes: accept returns the decoded
 * reply, undefined for a datagram to ignore (another id), or throws ProbeFailure (malformed).
 */
export async function udpExchange<T>(peer: Peer, query: Uint8Array, accept: (msg: Buffer) => T | undefined, b: Bounds, times: ExchangeTimes): Promise<T> {
  const sock: UdpSocket = createSocket({ type: net.isIP(peer.ip) === 6 ? "udp6" : "udp4" });
  sock.on("error", noop); // errors after a wait settled are dropped, not thrown
  try {
    const setup = (ev: "listening" | "connect", act: () => void) =>
      waitOnce<void>(b, "sending the query", (ok, fail) => {
        const onErr = (e: Error) => fail(new ProbeFailure("connect", e.message));
        sock.once(ev, ok).once("error", onErr);
        act();
        return () => sock.off(ev, ok).off("error", onErr);
      });
    await setup("listening", () => sock.bind({ address: peer.source || undefined, port: 0 }));
    await setup("connect", () => sock.connect(peer.port, peer.ip));
    const sentAt = performance.now();
    const reply = await waitOnce<T>(b, "waiting for the reply", (ok, fail) => {
      const onMsg = (msg: Buffer) => {
        try {
          const r = accept(msg);
          if (r !== undefined) ok(r);
        } catch (e) {
          fail(e as Error);
        }
      };
      const onErr = (e: Error) => fail(new ProbeFailure("connect", e.message));
      sock.on("message", onMsg).on("error", onErr);
      sock.send(query, (e) => e && onErr(e));
      return () => sock.off("message", onMsg).off("error", onErr);
    });
    times.query = (performance.now() - sentAt) / 1000;
    return reply;
  } finally {
    try {
      sock.close();
    } catch {
      // already closed (a failed bind may close it): nothing left to release
    }
  }
}

/** What a TCP or DoT exchange returns besides the reply. */
export interface StreamOutcome {
  reply: Buffer;
  /** Negotiated TLS version ("" without TLS) and earliest certificate NotAfter (unix seconds; 0 without TLS). */
  tlsVersion: string;
  certExpiry: number;
}

/** Waits for `ok` on `sock`; "error" or "close" first fails with `reason`. */
function socketEvent(sock: net.Socket, ok: string, b: Bounds, what: string, reason: "connect" | "tls"): Promise<void> {
  return waitOnce<void>(b, what, (done, fail) => {
    const onOk = () => done();
    const onErr = (e: Error) => fail(new ProbeFailure(reason, e.message));
    const onClose = () => fail(new ProbeFailure(reason, "connection closed"));
    sock.once(ok, onOk).once("error", onErr).once("close", onClose);
    return () => sock.off(ok, onOk).off("error", onErr).off("close", onClose);
  });
}

/**
 * Sends `query` over TCP (RFC 1035 4.2.2: a two-byte length before each message), inside TLS
 * when `tlsOpts` is given (DNS over TLS), and reads one length-prefixed reply.
 */
export async function streamExchange(peer: Peer, query: Uint8Array, tlsOpts: tls.ConnectionOptions | undefined, b: Bounds, times: ExchangeTimes): Promise<StreamOutcome> {
  let t = performance.now();
  const raw = net.connect({ host: peer.ip, port: peer.port, localAddress: peer.source || undefined, noDelay: true });
  raw.on("error", noop);
  let sock: net.Socket = raw;
  try {
    await socketEvent(raw, "connect", b, "connecting", "connect");
    let now = performance.now();
    times.connect = (now - t) / 1000;
    let facts = { version: "", certExpiry: 0 };
    if (tlsOpts) {
      t = now;
      const ts = tls.connect({ ...tlsOpts, socket: raw });
      ts.on("error", noop);
      sock = ts;
      await socketEvent(ts, "secureConnect", b, "in the TLS handshake", "tls");
      now = performance.now();
      times.tls = (now - t) / 1000;
      facts = handshakeFacts(ts);
    }
    const frame = Buffer.alloc(2 + query.length);
    frame.writeUInt16BE(query.length, 0);
    frame.set(query, 2);
    const sentAt = performance.now();
    const reply = await waitOnce<Buffer>(b, "waiting for the reply", (ok, fail) => {
      let got = Buffer.alloc(0);
      const onData = (d: Buffer) => {
        got = Buffer.concat([got, d]);
        if (got.length >= 2 && got.length >= 2 + got.readUInt16BE(0)) ok(got.subarray(2, 2 + got.readUInt16BE(0)));
      };
      const onEnd = () => fail(new ProbeFailure("protocol", got.length ? "connection closed in the middle of the reply" : "connection closed without a reply"));
      const onErr = (e: Error) => fail(new ProbeFailure("protocol", `reading the reply: ${e.message}`));
      sock.on("data", onData).once("end", onEnd).once("close", onEnd).once("error", onErr);
      sock.write(frame);
      return () => sock.off("data", onData).off("end", onEnd).off("close", onEnd).off("error", onErr);
    });
    times.query = (performance.now() - sentAt) / 1000;
    return { reply, tlsVersion: facts.version, certExpiry: facts.certExpiry };
  } finally {
    sock.destroy();
    raw.destroy();
  }
}
