/**
 * Local gRPC servers for the grpc probe tests (loopback only: 127.0.0.1 or ::1).
 *
 *   startHealthServer   a real gRPC server (@connectrpc/connect-node on node:http2, gRPC protocol
 *                       only) implementing grpc.health.v1.Health with per-service statuses, as
 *                       grpc-go's health server: a service not in the map is NOT_FOUND. h2c, or
 *                       TLS (optionally requiring a client certificate). `health: false` serves no
 *                       health service and answers every call as grpc-go does for an unknown
 *                       service: trailers-only grpc-status 12 UNIMPLEMENTED. `notFound404` instead
 *                       keeps connect-node's own answer to an unknown path: HTTP 404 (not gRPC).
 *   startRawServer      a TCP / TLS server whose connection handler the test writes (silent
 *                       servers, HTTP/1.1-only servers, servers that close at once).
 */
import http2 from "node:http2";
import net from "node:net";
import tls from "node:tls";
import { ConnectError, Code } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { Health, HealthCheckResponse_ServingStatus as ServingStatus } from "../../lib/rpc/gen/grpc/health/v1/health_pb.ts";

export { ServingStatus };

/** How a health server is set up. */
export interface HealthServerOptions {
  /** Listen address (default 127.0.0.1). */
  host?: "127.0.0.1" | "::1";
  /** Status per service name; "" is the server as a whole. Default { "": SERVING }. */
  statuses?: Record<string, ServingStatus>;
  /** false: no health service (every call UNIMPLEMENTED, trailers-only). Default true. */
  health?: boolean;
  /** With health false: answer unknown paths with connect-node's HTTP 404 instead. */
  notFound404?: boolean;
  /** TLS with this certificate and key (PEM text); `ca` + requestClientCert demand a client certificate signed by it. */
  tls?: { cert: string; key: string; ca?: string; requireClientCert?: boolean };
}

/** A running server. */
export interface RunningServer {
  port: number;
  /** Request headers of every call received, in order (lower-case names). */
  calls: http2.IncomingHttpHeaders[];
  /** HealthCheckRequest.service of every Check received. */
  services: string[];
  close(): Promise<void>;
}

/** Starts a gRPC health server (see the file comment). */
export async function startHealthServer(o: HealthServerOptions = {}): Promise<RunningServer> {
  const statuses = o.statuses ?? { "": ServingStatus.SERVING };
  const calls: http2.IncomingHttpHeaders[] = [];
  const services: string[] = [];
  const status = (service: string) => {
    const s = statuses[service];
    if (s === undefined) throw new ConnectError("unknown service", Code.NotFound);
    return s;
  };
  const adapter = connectNodeAdapter({
    grpc: true,
    connect: false,
    grpcWeb: false,
    routes: (router) => {
      if (o.health === false) return;
      router.service(Health, {
        check(req) {
          services.push(req.service);
          return { status: status(req.service) };
        },
        list() {
          return { statuses: Object.fromEntries(Object.entries(statuses).map(([k, v]) => [k, { status: v }])) };
        },
        async *watch(req) {
          yield { status: statuses[req.service] ?? ServingStatus.SERVICE_UNKNOWN };
        },
      });
    },
    fallback: o.notFound404
      ? undefined
      : (_req, res) => {
          // grpc-go's answer to a method it does not serve: trailers-only (one HEADERS frame with
          // END_STREAM) UNIMPLEMENTED.
          (res as http2.Http2ServerResponse).stream.respond({ ":status": 200, "content-type": "application/grpc", "grpc-status": "12", "grpc-message": "unknown service grpc.health.v1.Health" }, { endStream: true });
        },
  });
  const handler = (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => {
    calls.push({ ...req.headers });
    adapter(req, res);
  };
  const server = o.tls
    ? http2.createSecureServer({ cert: o.tls.cert, key: o.tls.key, ca: o.tls.ca, requestCert: o.tls.requireClientCert ?? false, rejectUnauthorized: o.tls.requireClientCert ?? false, allowHTTP1: false }, handler)
    : http2.createServer(handler);
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on("session", (s: http2.ServerHttp2Session) => {
    sessions.add(s);
    s.on("error", () => {});
    s.on("close", () => sessions.delete(s));
  });
  server.on("tlsClientError", () => {});
  await new Promise<void>((resolve) => server.listen(0, o.host ?? "127.0.0.1", resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    calls,
    services,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sessions) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/**
 * Starts an h2c server whose every stream the test answers itself (`reply`), for responses no
 * well-behaved gRPC server sends: malformed messages, missing trailers, wrong content types.
 * `grpc(stream, body, trailers)` answers as gRPC does: HEADERS, DATA `body`, trailers.
 */
export async function startH2Server(reply: (stream: http2.ServerHttp2Stream) => void): Promise<RunningServer> {
  const calls: http2.IncomingHttpHeaders[] = [];
  const server = http2.createServer();
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on("session", (s: http2.ServerHttp2Session) => {
    sessions.add(s);
    s.on("error", () => {});
    s.on("close", () => sessions.delete(s));
  });
  server.on("stream", (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders) => {
    calls.push({ ...headers });
    stream.on("error", () => {});
    stream.resume();
    reply(stream);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    calls,
    services: [],
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sessions) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/** Answers `stream` as a gRPC server does: HEADERS (200, application/grpc), DATA `body`, then `trailers`. */
export function grpcReply(stream: http2.ServerHttp2Stream, body: Buffer, trailers: http2.OutgoingHttpHeaders): void {
  stream.respond({ ":status": 200, "content-type": "application/grpc" }, { waitForTrailers: true });
  stream.on("wantTrailers", () => stream.sendTrailers(trailers));
  stream.end(body);
}

/** Starts a TCP server (TLS when `tlsOptions` is given) that hands each connection to `onConnection`. */
export async function startRawServer(onConnection: (sock: net.Socket) => void, tlsOptions?: tls.TlsOptions, host: "127.0.0.1" | "::1" = "127.0.0.1"): Promise<RunningServer> {
  const socks = new Set<net.Socket>();
  const track = (sock: net.Socket) => {
    socks.add(sock);
    sock.on("error", () => {});
    sock.on("close", () => socks.delete(sock));
    onConnection(sock);
  };
  const server = tlsOptions ? tls.createServer(tlsOptions, track) : net.createServer(track);
  server.on("tlsClientError", () => {});
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    calls: [],
    services: [],
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of socks) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/** A port nothing listens on (bound, then closed): connecting to it is refused. */
export async function closedPort(host: "127.0.0.1" | "::1" = "127.0.0.1"): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((resolve) => s.listen(0, host, resolve));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}
