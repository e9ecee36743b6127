/**
 * One HTTP/2 request (RFC 9113) on a TLS socket whose ALPN chose "h2", with node:http2 on that
 * socket (http2.connect with createConnection), as Go's transport does after ALPN when
 * enable_http2. The same phases as HTTP/1.1: processing = request sent -> response headers (an
 * interim 1xx HEADERS included), transfer = -> end of the body (decoded). The response's version
 * is "HTTP/2.0" (Go's resp.Proto).
 */
import http2 from "node:http2";
import type tls from "node:tls";
import type { BodySink } from "./body.ts";
import { MAX_INTERIM_RESPONSES } from "./defaults.ts";
import { exchangeFailure, ProbeFailure } from "./failure.ts";
import type { ExchangePhases, HopRequest } from "./h1.ts";
import type { ResponseHead } from "./response.ts";

/** Connection-specific headers HTTP/2 forbids (RFC 9113 §8.2.2); Go drops them too. */
const CONNECTION_HEADERS = new Set(["connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "host"]);

/** The request's HTTP/2 header block: pseudo-headers, then the headers lower-cased, repeated names as lists. */
function h2Headers(req: HopRequest): http2.OutgoingHttpHeaders {
  const out: http2.OutgoingHttpHeaders = { ":method": req.method, ":scheme": req.scheme, ":authority": req.authority, ":path": req.target };
  for (const [k, v] of req.headers) {
    const n = k.toLowerCase();
    if (CONNECTION_HEADERS.has(n)) continue;
    const prev = out[n];
    out[n] = prev === undefined ? v : [...(Array.isArray(prev) ? prev : [String(prev)]), v];
  }
  if (req.body.length || ["POST", "PUT", "PATCH"].includes(req.method)) out["content-length"] = String(req.body.length);
  return out;
}

/** node's incoming headers as a ResponseHead (values as lists; node joins most repeated headers with ", "). */
function headOf(h: http2.IncomingHttpHeaders): ResponseHead {
  const headers = new Map<string, string[]>();
  for (const [k, v] of Object.entries(h)) {
    if (k.startsWith(":") || v === undefined) continue;
    headers.set(k, Array.isArray(v) ? v.map(String) : [String(v)]);
  }
  return { version: "HTTP/2.0", status: Number(h[":status"]), headers };
}

/**
 * Sends `req` on a new HTTP/2 session over `sock` and reads the response into `sink`. Settles
 * exactly once (response complete, stream or session error, sink failure, deadline in
 * performance.now() ms, or `signal`), removes its listeners and timer, and destroys the session
 * then; errors the session emits later are swallowed. The caller destroys `sock`.
 * @returns the final response's head
 * @throws ProbeFailure (http_protocol, timeout, body_size_limit, compression)
 */
export function exchangeH2(sock: tls.TLSSocket, req: HopRequest, sink: BodySink, deadline: number, phases: ExchangePhases, signal?: AbortSignal): Promise<ResponseHead> {
  return new Promise((resolve, reject) => {
    let settled = false;
    let finishing = false;
    let firstByteAt = 0;
    let interim = 0;
    let head: ResponseHead | undefined;
    let closeLater: ReturnType<typeof setImmediate> | undefined;
    const noop = () => {};
    const sentAt = performance.now();
    const session = http2.connect(`https://${req.authority}`, { createConnection: () => sock, settings: { enablePush: false } });
    const stream = session.request(h2Headers(req), { endStream: req.body.length === 0 });
    const timer = setTimeout(() => settle(new ProbeFailure("timeout", firstByteAt ? "timed out reading the body" : "timed out waiting for the first byte")), Math.max(0, deadline - sentAt));

    function settle(err?: Error) {
      if (settled) return;
      settled = true;
      const at = performance.now();
      clearTimeout(timer);
      if (closeLater) clearImmediate(closeLater);
      signal?.removeEventListener("abort", onAbort);
      stream.off("headers", onInterim).off("response", onResponse).off("data", onData).off("end", onStreamEnd).off("close", onClose).off("error", onError).on("error", noop);
      session.off("error", onError).on("error", noop);
      sock.off("error", onError).on("error", noop);
      session.destroy();
      if (firstByteAt) phases.transfer += (at - firstByteAt) / 1000;
      if (err) reject(err);
      else resolve(head!);
    }
    function firstByte() {
      if (firstByteAt) return;
      firstByteAt = performance.now();
      phases.processing += (firstByteAt - sentAt) / 1000;
    }
    function onAbort() {
      settle(new ProbeFailure("timeout", "aborted"));
    }
    function onInterim() {
      firstByte();
      if (++interim > MAX_INTERIM_RESPONSES) settle(new ProbeFailure("http_protocol", `too many 1xx informational responses (more than ${MAX_INTERIM_RESPONSES})`));
    }
    function onResponse(h: http2.IncomingHttpHeaders) {
      firstByte();
      head = headOf(h);
    }
    function onData(d: Buffer) {
      sink.push(d);
    }
    function onStreamEnd() {
      if (!head || finishing) return;
      finishing = true;
      sink.finish().then(() => settle(), (e: Error) => settle(e));
    }
    function onClose() {
      // A stream torn down with its session closes before the session reports why: give that
      // report one turn of the event loop.
      closeLater = setImmediate(() => {
        if (finishing) return;
        const code = stream.rstCode ? ` (RST_STREAM code ${stream.rstCode})` : "";
        settle(new ProbeFailure("http_protocol", head ? `HTTP/2 stream closed before the response was complete${code}` : `HTTP/2 stream closed before a response${code}`));
      });
    }
    function onError(e: Error) {
      settle(exchangeFailure(e, "HTTP/2: "));
    }

    sink.onFailure = (f) => settle(f);
    sock.on("error", onError);
    session.on("error", onError);
    stream.on("headers", onInterim).on("response", onResponse).on("data", onData).on("end", onStreamEnd).on("close", onClose).on("error", onError);
    if (req.body.length) stream.end(req.body);
    signal?.addEventListener("abort", onAbort, { once: true });
    if (signal?.aborted) onAbort();
  });
}
