/**
 * One HTTP/1.1 request and its response on a connected socket (plain, TLS, or a proxy's tunnel):
 * writes the request, reads the response with ResponseParser (interim 1xx answers skipped), and
 * hands the body to a BodySink. Phases: processing (request written -> first response byte,
 * interim answers included, as Go's GotFirstResponseByte) and transfer (first byte -> body
 * complete and decoded).
 */
import type net from "node:net";
import type { BodySink } from "./body.ts";
import { exchangeFailure, ProbeFailure } from "./failure.ts";
import { HttpProtocolError, ResponseParser, type ResponseHead } from "./response.ts";

/** A request as one hop sends it. */
export interface HopRequest {
  method: string;
  /** The request target: origin-form "/path?q", or absolute-form "http://host:port/path" through a forward proxy. */
  target: string;
  /** Host header / :authority. */
  authority: string;
  /** "http" or "https" (HTTP/2's :scheme). */
  scheme: string;
  /** Headers in order, Host excluded; names as written. */
  headers: [string, string][];
  body: Buffer;
}

/** Processing and transfer durations of a hop, seconds; added to as they complete. */
export interface ExchangePhases {
  processing: number;
  transfer: number;
}

/** Methods Go sends Content-Length: 0 for when there is no body. */
const BODY_METHODS = new Set(["POST", "PUT", "PATCH"]);

/** The HTTP/1.1 request head and body bytes. */
export function requestBytes(req: HopRequest): Buffer {
  const lines = [`${req.method} ${req.target} HTTP/1.1`, `Host: ${req.authority}`, ...req.headers.map(([k, v]) => `${k}: ${v}`)];
  if (req.body.length || BODY_METHODS.has(req.method)) lines.push(`Content-Length: ${req.body.length}`);
  return Buffer.concat([Buffer.from(`${lines.join("\r\n")}\r\n\r\n`, "latin1"), req.body]);
}

/**
 * Writes `req` on `sock` and reads the response into `sink`. Settles exactly once, whichever of
 * body complete (and decoded), "end", "close", "error", a sink failure, the deadline
 * (performance.now() ms) or `signal` comes first, and removes every listener and the timer when it
 * does: a FIN arriving with the last chunk must not finish the exchange a second time.
 * @returns the final response's head
 * @throws ProbeFailure (http_protocol, timeout, body_size_limit, compression)
 */
export function exchangeH1(sock: net.Socket, req: HopRequest, sink: BodySink, deadline: number, phases: ExchangePhases, signal?: AbortSignal): Promise<ResponseHead> {
  const parser = new ResponseParser(req.method === "HEAD", (b) => sink.push(b));
  return new Promise((resolve, reject) => {
    let firstByteAt = 0;
    let settled = false;
    let finishing = false;
    const sentAt = performance.now();
    const settle = (err?: Error) => {
      if (settled) return;
      settled = true;
      const at = performance.now();
      clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
      sock.off("data", onData).off("end", onEnd).off("close", onEnd).off("error", onError);
      if (firstByteAt) phases.transfer += (at - firstByteAt) / 1000;
      if (err) reject(err);
      else resolve(parser.head!);
    };
    const complete = () => {
      if (finishing) return;
      finishing = true;
      sink.finish().then(() => settle(), (e: Error) => settle(e));
    };
    const timer = setTimeout(() => settle(new ProbeFailure("timeout", firstByteAt ? "timed out reading the body" : "timed out waiting for the first byte")), Math.max(0, deadline - sentAt));
    const onAbort = () => settle(new ProbeFailure("timeout", "aborted"));
    const onData = (d: Buffer) => {
      if (!firstByteAt) {
        firstByteAt = performance.now();
        phases.processing += (firstByteAt - sentAt) / 1000;
      }
      try {
        parser.push(d);
      } catch (e) {
        return settle(new ProbeFailure("http_protocol", (e as HttpProtocolError).message));
      }
      if (parser.done) complete();
    };
    const onEnd = () => (parser.end() ? complete() : settle(new ProbeFailure("http_protocol", "connection closed before the response was complete")));
    const onError = (e: Error) => settle(exchangeFailure(e));
    sink.onFailure = (f) => settle(f);
    sock.on("data", onData).once("end", onEnd).once("close", onEnd).once("error", onError);
    signal?.addEventListener("abort", onAbort, { once: true });
    if (signal?.aborted) return onAbort();
    sock.write(requestBytes(req));
  });
}
