/**
 * One TCP listener that serves HTTP/1.1 and HTTP/2 with the same Node-style handler, as
 * Connect-RPC needs (`curl` speaks HTTP/1.1, `buf curl` and gRPC-style clients HTTP/2):
 *
 * - plaintext: connections are told apart by the HTTP/2 client preface (h2c with prior knowledge,
 *   RFC 9113 §3.4);
 * - TLS: by ALPN (`h2` or `http/1.1`), with optional client certificates (mutual TLS); the
 *   certificate can be replaced while running (setTls, on SIGHUP).
 *
 * Every stage has a deadline so that idle or trickling clients (slowloris) cannot hold sockets:
 * the first bytes or the TLS handshake, the request headers, the whole request, and idle time.
 */
import http from "node:http";
import http2 from "node:http2";
import net from "node:net";
import tls from "node:tls";

const PREFACE = Buffer.from("PRI * HTTP/2.0\r\n");

/** Deadlines of the listener, milliseconds (docs/security.md "Limits"). */
export const LISTENER_TIMEOUTS = {
  /** From accept to the first request bytes (plaintext) or to the end of the TLS handshake. */
  handshakeMs: 10_000,
  /** HTTP/1.1: from the connection's start to a complete first request head (an absolute deadline: trickling bytes do not extend it). */
  headersMs: 10_000,
  /**
   * HTTP/1.1: from the end of a response to a complete next request head (absolute, as above).
   * Longer than the agents' heartbeat period (10 s at most, lib/rpc/heartbeat.ts) with room to
   * spare: when it was 10 s, a kept-alive connection was closed just as the agent's next heartbeat
   * reused it, and that call failed with a connection reset (bench:mesh retried ~900 such calls
   * in a run at 5,000 agents).
   */
  keepAliveMs: 30_000,
  /** HTTP/1.1: from a complete request head to the end of its response. */
  requestMs: 60_000,
  /** A connection or HTTP/2 session with no traffic for this long is closed. */
  idleMs: 120_000,
} as const;

/** The deadlines of a listener (LISTENER_TIMEOUTS' shape), milliseconds. */
export type ListenerTimeouts = { readonly [K in keyof typeof LISTENER_TIMEOUTS]: number };

/** TLS settings of a listener: PEM text. */
export interface ListenerTls {
  cert: string;
  key: string;
  /** Client CA bundle: when set, clients must present a certificate it signed (mutual TLS). */
  clientCa?: string;
}

/** A started listener. */
export interface Listener {
  /** The bound port (useful with port 0). */
  port: number;
  /** Replaces the TLS certificate, key and client CA (new connections only). No-op without TLS. */
  setTls(t: ListenerTls): void;
  close(): Promise<void>;
}

/** Splits "host:port" (or "[v6]:port", ":port") into parts. @throws Error when malformed */
export function splitHostPort(addr: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d{1,5})$/.exec(addr);
  if (!m || Number(m[3]) > 65535) throw new Error(`invalid listen address "${addr}" (want host:port)`);
  return { host: m[1] ?? (m[2] || "0.0.0.0"), port: Number(m[3]) };
}

/** True for a host name or address that only this machine can reach (localhost, 127.0.0.0/8, ::1). */
export function isLoopbackHost(host: string): boolean {
  return host === "localhost" || /^127\.\d+\.\d+\.\d+$/.test(host) || host === "::1" || /^::ffff:127\./.test(host);
}

const tlsOptions = (t: ListenerTls): tls.SecureContextOptions & { requestCert: boolean; rejectUnauthorized: boolean } => ({
  cert: t.cert, key: t.key, ca: t.clientCa, requestCert: !!t.clientCa, rejectUnauthorized: !!t.clientCa,
});

type Handler = (req: http.IncomingMessage | http2.Http2ServerRequest, res: http.ServerResponse | http2.Http2ServerResponse) => void;

/**
 * Listens on `addr` ("host:port") and serves `handler` over HTTP/1.1 and HTTP/2, in plaintext or
 * with `tlsConfig`; `timeouts` are the deadlines (tests shorten them). @throws Error (EADDRINUSE, a bad certificate, ...) when it cannot start
 */
export async function listenH1H2c(addr: string, handler: Handler, tlsConfig?: ListenerTls, timeouts: ListenerTimeouts = LISTENER_TIMEOUTS): Promise<Listener> {
  const { host, port } = splitHostPort(addr);
  const h1 = http.createServer(handler as http.RequestListener);
  // Absolute deadlines per HTTP/1.1 connection, enforced here (the runtime's own headersTimeout
  // does not cover connections handed over with emit("connection")).
  const deadlines = new WeakMap<net.Socket, ReturnType<typeof setTimeout>>();
  const arm = (sock: net.Socket, ms: number) => {
    clearTimeout(deadlines.get(sock));
    deadlines.set(sock, setTimeout(() => sock.destroy(), ms));
  };
  h1.on("request", (req: http.IncomingMessage, res: http.ServerResponse) => {
    arm(req.socket, timeouts.requestMs);
    res.once("finish", () => arm(req.socket, timeouts.keepAliveMs));
  });
  h1.headersTimeout = timeouts.headersMs;
  h1.requestTimeout = timeouts.requestMs;
  h1.keepAliveTimeout = timeouts.idleMs;
  h1.timeout = timeouts.idleMs;
  const h2 = http2.createServer({}, handler as (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => void);
  h2.setTimeout(timeouts.idleMs); // no listener: an idle session is destroyed
  const sockets = new Set<net.Socket>();
  const track = (sock: net.Socket) => {
    sockets.add(sock);
    sock.once("close", () => sockets.delete(sock));
    sock.on("error", () => sock.destroy());
  };
  const handOff = (sock: net.Socket, isH2: boolean) => {
    sock.setTimeout(timeouts.idleMs);
    if (!isH2) {
      arm(sock, timeouts.headersMs);
      sock.once("close", () => clearTimeout(deadlines.get(sock)));
    }
    (isH2 ? h2 : h1).emit("connection", sock);
  };

  let srv: net.Server;
  if (tlsConfig) {
    const s = tls.createServer({ ...tlsOptions(tlsConfig), ALPNProtocols: ["h2", "http/1.1"], handshakeTimeout: timeouts.handshakeMs }, (sock) => handOff(sock, sock.alpnProtocol === "h2"));
    s.on("connection", track);
    s.on("tlsClientError", (_e, sock) => sock.destroy());
    srv = s;
  } else {
    srv = net.createServer((sock) => {
      track(sock);
      // Nothing within the handshake time: an idle connection, closed.
      sock.setTimeout(timeouts.handshakeMs, () => sock.destroy());
      sock.once("readable", () => {
        const head = (sock.read(PREFACE.length) as Buffer | null) ?? (sock.read() as Buffer | null);
        if (head) sock.unshift(head);
        handOff(sock, !!head && head.equals(PREFACE));
      });
    });
  }
  await new Promise<void>((resolve, reject) => {
    srv.once("error", reject);
    srv.listen(port, host, () => resolve());
  });
  return {
    port: (srv.address() as net.AddressInfo).port,
    setTls(t) {
      if (srv instanceof tls.Server) srv.setSecureContext(tlsOptions(t));
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        srv.close(() => resolve());
      }),
  };
}
