/**
 * One TCP listener that serves HTTP/1.1 and h2c (HTTP/2 with prior knowledge) with the same
 * Node-style handler: connections are told apart by the HTTP/2 client preface (RFC 9113 §3.4).
 * Connect-RPC needs both: `curl` speaks HTTP/1.1, `buf curl` and gRPC-style clients h2c.
 */
import http from "node:http";
import http2 from "node:http2";
import net from "node:net";

const PREFACE = Buffer.from("PRI * HTTP/2.0\r\n");

/** A started listener. */
export interface Listener {
  /** The bound port (useful with port 0). */
  port: number;
  close(): Promise<void>;
}

/** Splits "host:port" (or "[v6]:port", ":port") into parts. @throws Error when malformed */
export function splitHostPort(addr: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d{1,5})$/.exec(addr);
  if (!m || Number(m[3]) > 65535) throw new Error(`invalid listen address "${addr}" (want host:port)`);
  return { host: m[1] ?? (m[2] || "0.0.0.0"), port: Number(m[3]) };
}

/**
 * Listens on `addr` ("host:port") and serves `handler` over HTTP/1.1 and h2c.
 * @throws Error (EADDRINUSE etc.) when the address cannot be bound
 */
export async function listenH1H2c(addr: string, handler: (req: http.IncomingMessage | http2.Http2ServerRequest, res: http.ServerResponse | http2.Http2ServerResponse) => void): Promise<Listener> {
  const { host, port } = splitHostPort(addr);
  const h1 = http.createServer(handler as http.RequestListener);
  const h2 = http2.createServer({}, handler as (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => void);
  const sockets = new Set<net.Socket>();
  const srv = net.createServer((sock) => {
    sockets.add(sock);
    sock.once("close", () => sockets.delete(sock));
    sock.on("error", () => sock.destroy());
    sock.once("readable", () => {
      const head = sock.read(PREFACE.length) as Buffer | null ?? (sock.read() as Buffer | null);
      if (head) sock.unshift(head);
      if (head && head.equals(PREFACE)) h2.emit("connection", sock);
      else h1.emit("connection", sock);
    });
  });
  await new Promise<void>((resolve, reject) => {
    srv.once("error", reject);
    srv.listen(port, host, () => resolve());
  });
  const bound = (srv.address() as net.AddressInfo).port;
  return {
    port: bound,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        srv.close(() => resolve());
      }),
  };
}
