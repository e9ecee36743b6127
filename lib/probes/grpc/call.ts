/**
 * One grpc.health.v1.Health/Check call over an HTTP/2 session on a socket the prober connected
 * itself (gRPC over HTTP/2: https://github.com/grpc/grpc/blob/master/doc/PROTOCOL-HTTP2.md):
 *
 *   HEADERS  :method POST, :path /grpc.health.v1.Health/Check, content-type application/grpc,
 *            te trailers, grpc-timeout (what is left of the probe's deadline), metadata
 *   DATA     0x00 | uint32 length (big-endian) | HealthCheckRequest
 *   <-       HEADERS (:status 200, content-type application/grpc), DATA (one length-prefixed
 *            HealthCheckResponse), trailers grpc-status / grpc-message; or "trailers-only": one
 *            HEADERS frame holding grpc-status and END_STREAM.
 */
import http2 from "node:http2";
import type net from "node:net";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { HealthCheckRequestSchema, HealthCheckResponse_ServingStatus, HealthCheckResponseSchema } from "../../rpc/gen/grpc/health/v1/health_pb.ts";
import type { GrpcMetadata } from "../../rpc/gen/probermesh/v1/grpc_pb.ts";
import { VERSION } from "../../version.ts";
import { ProbeFailure } from "./failure.ts";
import { Code, codeOfHttpStatus, decodeGrpcMessage, parseGrpcStatus } from "./status.ts";

/** The health check's method path. */
export const HEALTH_CHECK_PATH = "/grpc.health.v1.Health/Check";

/** Largest response message accepted, bytes (a HealthCheckResponse is 2 bytes). */
const MAX_MESSAGE = 64 * 1024;

/** What a call that reached its end reports. */
export interface CallOutcome {
  /** grpc-status of the server (0 OK). */
  grpcStatus: number;
  /** grpc-message, decoded ("" when none). */
  grpcMessage: string;
  /** HealthCheckResponse.status by name ("" when the call sent no message); a number outside the enum as decimal. */
  servingStatus: string;
  /** performance.now() when the status arrived (trailers, or the trailers-only HEADERS). */
  statusAt: number;
}

/** How to call. */
export interface CallOptions {
  /** :authority, e.g. "example.com:443" or "[::1]:50051". */
  authority: string;
  tls: boolean;
  /** HealthCheckRequest.service. */
  service: string;
  metadata: GrpcMetadata[];
  /** performance.now() milliseconds at which the probe's timeout runs out. */
  deadline: number;
  signal?: AbortSignal;
}

/** grpc-timeout for `ms` milliseconds: at most 8 digits, in ms or, when longer, seconds (PROTOCOL-HTTP2.md). */
export function grpcTimeout(ms: number): string {
  const m = Math.max(1, Math.ceil(ms));
  return m <= 99_999_999 ? `${m}m` : `${Math.min(99_999_999, Math.ceil(m / 1000))}S`;
}

/** The request's headers: the fixed gRPC ones, then metadata (repeated keys become repeated fields). */
function requestHeaders(o: CallOptions): http2.OutgoingHttpHeaders {
  const h: http2.OutgoingHttpHeaders = {
    ":method": "POST",
    ":path": HEALTH_CHECK_PATH,
    ":scheme": o.tls ? "https" : "http",
    ":authority": o.authority,
    "content-type": "application/grpc",
    te: "trailers",
    "grpc-timeout": grpcTimeout(o.deadline - performance.now()),
    "user-agent": `grpc-probermesh/${VERSION}`,
  };
  const md = new Map<string, string[]>();
  for (const { key, value } of o.metadata) {
    // "-bin" values are bytes, base64 without padding on the wire (as grpc-go sends them).
    const v = key.endsWith("-bin") ? Buffer.from(value, "utf8").toString("base64").replace(/=+$/, "") : value;
    md.set(key, [...(md.get(key) ?? []), v]);
  }
  for (const [k, vs] of md) h[k] = vs.length === 1 ? vs[0] : vs;
  return h;
}

/** One gRPC length-prefixed message: compressed flag 0, length, bytes. */
export function frame(msg: Uint8Array): Buffer {
  const b = Buffer.alloc(5 + msg.length);
  b.writeUInt32BE(msg.length, 1);
  b.set(msg, 5);
  return b;
}

/** Splits length-prefixed messages out of the response body. @throws ProbeFailure("protocol") */
export function unframe(body: Buffer): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < body.length; ) {
    if (body.length - i < 5) throw new ProbeFailure("protocol", "response ends inside a message's 5-byte prefix", Code.INTERNAL);
    if (body[i] !== 0) throw new ProbeFailure("protocol", `compressed response message (flag ${body[i]}) although no compression was offered`, Code.INTERNAL);
    const len = body.readUInt32BE(i + 1);
    if (i + 5 + len > body.length) throw new ProbeFailure("protocol", `response message truncated: ${body.length - i - 5} of ${len} bytes`, Code.INTERNAL);
    out.push(body.subarray(i + 5, i + 5 + len));
    i += 5 + len;
  }
  return out;
}

/** TLS alerts and errors (OpenSSL / BoringSSL text or node's ERR_SSL_* codes). */
const TLS_ERROR = /^ERR_SSL_|SSL routines|alert/i;

/**
 * The failure for an error of the connection under the session: a TLS alert is "tls" (a TLS 1.3
 * server refuses a client certificate after the client's handshake is done, so its alert arrives
 * here), anything else "protocol".
 */
function socketFailure(e: Error, where: string): ProbeFailure {
  const code = (e as NodeJS.ErrnoException).code ?? "";
  if (TLS_ERROR.test(code) || TLS_ERROR.test(e.message)) return new ProbeFailure("tls", `TLS alert after the handshake: ${e.message}`, Code.UNAVAILABLE);
  return new ProbeFailure("protocol", `${where}: ${e.message}`, Code.UNAVAILABLE);
}

const header = (h: http2.IncomingHttpHeaders | undefined, k: string): string | undefined => {
  const v = h?.[k];
  return Array.isArray(v) ? v[0] : v;
};

/**
 * Calls Health/Check on a new HTTP/2 session over `sock` (connected, TLS done when o.tls).
 * Resolves when the call ended with a grpc-status (any code: judging it is the caller's); rejects
 * with ProbeFailure: "protocol" (session or stream error, not a gRPC response, malformed message),
 * "timeout" (deadline or abort). Settles exactly once; the timer and abort listener are removed
 * then. The session is returned through `onSession` at once so that the caller destroys it
 * whatever happens; errors it emits after settling are swallowed.
 */
export function healthCheck(sock: net.Socket, o: CallOptions, onSession: (s: http2.ClientHttp2Session) => void): Promise<CallOutcome> {
  return new Promise((resolve, reject) => {
    let settled = false;
    let head: http2.IncomingHttpHeaders | undefined;
    let trailers: http2.IncomingHttpHeaders | undefined;
    let statusAt = 0;
    let trailersOnly = false;
    let bodyBytes = 0;
    let closeLater: ReturnType<typeof setImmediate> | undefined;
    const chunks: Buffer[] = [];
    const noop = () => {};
    const session = http2.connect(`${o.tls ? "https" : "http"}://${o.authority}`, { createConnection: () => sock, settings: { enablePush: false } });
    onSession(session);
    const stream = session.request(requestHeaders(o), { endStream: false });
    const timer = setTimeout(() => settle(new ProbeFailure("timeout", head ? "timed out waiting for the response's end" : "timed out waiting for the response", Code.DEADLINE_EXCEEDED)), Math.max(0, o.deadline - performance.now()));
    const onAbort = () => settle(new ProbeFailure("timeout", "aborted", Code.CANCELLED));
    o.signal?.addEventListener("abort", onAbort, { once: true });

    function settle(e?: ProbeFailure, out?: CallOutcome) {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (closeLater) clearImmediate(closeLater);
      o.signal?.removeEventListener("abort", onAbort);
      sock.off("error", onSocketError).on("error", noop);
      session.off("error", onSessionError).on("error", noop);
      stream.off("error", onStreamError).off("response", onResponse).off("trailers", onTrailers).off("data", onData).off("close", onClose).on("error", noop);
      if (e) reject(e);
      else resolve(out!);
    }
    function onSessionError(e: Error) {
      settle(socketFailure(e, "HTTP/2 session"));
    }
    function onSocketError(e: Error) {
      settle(socketFailure(e, "connection"));
    }
    function onStreamError(e: Error) {
      settle(new ProbeFailure("protocol", `HTTP/2 stream: ${e.message}`, Code.UNAVAILABLE));
    }
    function onResponse(h: http2.IncomingHttpHeaders, flags: number) {
      head = h;
      // Trailers-only: the status in the one HEADERS frame, which ends the stream.
      trailersOnly = (flags & http2.constants.NGHTTP2_FLAG_END_STREAM) !== 0;
      if (trailersOnly) statusAt = performance.now();
    }
    function onTrailers(t: http2.IncomingHttpHeaders) {
      trailers = t;
      statusAt = performance.now();
    }
    function onData(d: Buffer) {
      bodyBytes += d.length;
      if (bodyBytes > MAX_MESSAGE + 5) return settle(new ProbeFailure("protocol", `response body larger than ${MAX_MESSAGE} bytes`, Code.INTERNAL));
      chunks.push(d);
    }
    function onClose() {
      // A stream torn down with its session (a TLS alert, a reset) closes before the session or
      // socket reports why: give that report one turn of the event loop to settle first.
      if (!head) closeLater = setImmediate(judge);
      else judge();
    }
    function judge() {
      try {
        settle(undefined, outcome());
      } catch (e) {
        settle(e as ProbeFailure);
      }
    }
    /** Judges the ended stream. @throws ProbeFailure("protocol") */
    function outcome(): CallOutcome {
      if (!head) throw new ProbeFailure("protocol", `stream closed before a response${stream.rstCode ? ` (RST_STREAM code ${stream.rstCode})` : ""}`, Code.UNAVAILABLE);
      const httpStatus = Number(head[":status"]);
      const grpcType = /^application\/grpc(\+|;|$)/.test(header(head, "content-type") ?? "");
      const statusText = trailersOnly ? header(head, "grpc-status") : header(trailers, "grpc-status");
      if (!grpcType || statusText === undefined) {
        const why = httpStatus !== 200 ? `HTTP status ${httpStatus}` : !grpcType ? `content-type "${header(head, "content-type") ?? ""}"` : "no grpc-status in trailers";
        // As grpc-go: a non-200 status maps by gRPC's table, 200 without gRPC's content-type is
        // UNKNOWN, a gRPC response whose stream ended without grpc-status is INTERNAL.
        throw new ProbeFailure("protocol", `not a gRPC response: ${why}`, httpStatus !== 200 ? codeOfHttpStatus(httpStatus) : grpcType ? Code.INTERNAL : Code.UNKNOWN);
      }
      const grpcStatus = parseGrpcStatus(statusText);
      const grpcMessage = decodeGrpcMessage(header(trailersOnly ? head : trailers, "grpc-message"));
      if (grpcStatus !== Code.OK) return { grpcStatus, grpcMessage, servingStatus: "", statusAt };
      const msgs = unframe(Buffer.concat(chunks));
      if (msgs.length !== 1) throw new ProbeFailure("protocol", `grpc-status 0 with ${msgs.length} response messages (a unary call has one)`, Code.INTERNAL);
      let status: number;
      try {
        status = fromBinary(HealthCheckResponseSchema, msgs[0]!).status;
      } catch (e) {
        throw new ProbeFailure("protocol", `malformed HealthCheckResponse: ${(e as Error).message}`, Code.INTERNAL);
      }
      return { grpcStatus, grpcMessage, servingStatus: HealthCheckResponse_ServingStatus[status] ?? String(status), statusAt };
    }

    sock.on("error", onSocketError);
    session.on("error", onSessionError);
    stream.on("error", onStreamError).on("response", onResponse).on("trailers", onTrailers).on("data", onData).on("close", onClose);
    stream.end(frame(toBinary(HealthCheckRequestSchema, create(HealthCheckRequestSchema, { service: o.service }))));
    if (o.signal?.aborted) onAbort();
  });
}
