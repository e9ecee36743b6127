/**
 * A forward proxy for the HTTP probe's proxy tests, on 127.0.0.1, written on raw sockets so that
 * every request is seen as sent: absolute-form requests (plain http targets) are passed on in
 * origin-form, CONNECT opens a tunnel (https targets), and an optional SOCKS5 port (RFC 1928,
 * user/password RFC 1929) does the same for SOCKS. Whatever host a request names (an IP or a name
 * such as app.test, which nothing resolves), the proxy connects to 127.0.0.1 at the named port:
 * no packet leaves the machine. Every request is logged.
 */
import net from "node:net";
import tls from "node:tls";

/** One request as the proxy received it. */
export interface ProxyLogEntry {
  kind: "forward" | "connect" | "socks5";
  /** The request line's target (absolute URL, or host:port for CONNECT / SOCKS5). */
  target: string;
  /** Header lines as received (names lower-cased), e.g. proxy-authorization. */
  headers: Record<string, string[]>;
  /** SOCKS5 user:password when given. */
  socksAuth?: string;
}

export interface TestProxy {
  port: number;
  /** SOCKS5 port (when started with socks). */
  socksPort: number;
  log: ProxyLogEntry[];
  close(): void;
}

export interface ProxyOptions {
  /** Demand Proxy-Authorization: Basic base64(user:pass) (407 otherwise) / SOCKS5 user:pass. */
  auth?: string;
  /** Refuse every CONNECT with this status (e.g. 403). */
  refuseConnect?: number;
  /** Also start a SOCKS5 port. */
  socks?: boolean;
  /** Serve the proxy port over TLS with this certificate (an https:// proxy). */
  tls?: { key: string; cert: string };
}

function parseHead(text: string): { line: string; headers: Record<string, string[]> } {
  const [line, ...rest] = text.split("\r\n");
  const headers: Record<string, string[]> = {};
  for (const l of rest) {
    const i = l.indexOf(":");
    if (i > 0) (headers[l.slice(0, i).trim().toLowerCase()] ??= []).push(l.slice(i + 1).trim());
  }
  return { line: line!, headers };
}

/** Pipes `a` and `b` both ways; either end closing closes the other. */
function splice(a: net.Socket, b: net.Socket): void {
  a.pipe(b).pipe(a);
  for (const [x, y] of [[a, b], [b, a]] as const) {
    x.on("error", () => y.destroy());
    x.on("close", () => y.destroy());
  }
}

function onHttp(o: ProxyOptions, log: ProxyLogEntry[]) {
  return (client: net.Socket) => {
    let buf = Buffer.alloc(0);
    client.on("error", () => client.destroy());
    const onData = (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      const end = buf.indexOf("\r\n\r\n");
      if (end < 0) return;
      client.off("data", onData);
      const { line, headers } = parseHead(buf.subarray(0, end).toString("latin1"));
      const rest = buf.subarray(end + 4);
      const [method, target] = line.split(" ") as [string, string];
      log.push({ kind: method === "CONNECT" ? "connect" : "forward", target, headers });
      if (o.auth && headers["proxy-authorization"]?.[0] !== `Basic ${Buffer.from(o.auth).toString("base64")}`) {
        client.end("HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic\r\nContent-Length: 0\r\n\r\n");
        return;
      }
      if (method === "CONNECT") {
        if (o.refuseConnect) return void client.end(`HTTP/1.1 ${o.refuseConnect} Refused\r\nContent-Length: 0\r\n\r\n`);
        const port = Number(/:(\d+)$/.exec(target)?.[1]);
        const up = net.connect(port, "127.0.0.1", () => {
          client.write("HTTP/1.1 200 Connection established\r\n\r\n");
          if (rest.length) up.write(rest);
          splice(client, up);
        });
        up.on("error", () => client.end("HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n"));
        return;
      }
      const u = new URL(target);
      const lines = [`${method} ${u.pathname}${u.search} HTTP/1.1`];
      for (const [k, vs] of Object.entries(headers)) if (k !== "proxy-authorization") for (const v of vs) lines.push(`${k}: ${v}`);
      const up = net.connect(Number(u.port || 80), "127.0.0.1", () => {
        up.write(Buffer.concat([Buffer.from(`${lines.join("\r\n")}\r\n\r\n`, "latin1"), rest]));
        splice(client, up);
      });
      up.on("error", () => client.end("HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n"));
    };
    client.on("data", onData);
  };
}

/** A SOCKS5 server: method choice, optional RFC 1929 authentication, CONNECT. */
function onSocks(o: ProxyOptions, log: ProxyLogEntry[]) {
  return (client: net.Socket) => {
    let buf = Buffer.alloc(0);
    let state: "hello" | "auth" | "request" = "hello";
    let socksAuth: string | undefined;
    client.on("error", () => client.destroy());
    const onData = (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      if (state === "hello") {
        if (buf.length < 2 || buf.length < 2 + buf[1]!) return;
        const methods = [...buf.subarray(2, 2 + buf[1]!)];
        buf = buf.subarray(2 + buf[1]!);
        const want = o.auth ? 2 : 0;
        if (!methods.includes(want)) return void client.end(Buffer.from([5, 0xff]));
        client.write(Buffer.from([5, want]));
        state = o.auth ? "auth" : "request";
      }
      if (state === "auth") {
        if (buf.length < 2 || buf.length < 3 + buf[1]! || buf.length < 3 + buf[1]! + buf[2 + buf[1]!]!) return;
        const ulen = buf[1]!;
        const plen = buf[2 + ulen]!;
        socksAuth = `${buf.subarray(2, 2 + ulen)}:${buf.subarray(3 + ulen, 3 + ulen + plen)}`;
        buf = buf.subarray(3 + ulen + plen);
        if (socksAuth !== o.auth) return void client.end(Buffer.from([1, 1]));
        client.write(Buffer.from([1, 0]));
        state = "request";
      }
      if (buf.length < 5) return;
      const len = buf[3] === 1 ? 4 : buf[3] === 4 ? 16 : 1 + buf[4]!;
      if (buf.length < 4 + len + 2) return;
      client.off("data", onData);
      const host = buf[3] === 1 ? [...buf.subarray(4, 8)].join(".") : buf[3] === 4 ? buf.subarray(4, 20).toString("hex") : buf.subarray(5, 5 + buf[4]!).toString();
      const port = buf.readUInt16BE(4 + len);
      log.push({ kind: "socks5", target: `${host}:${port}`, headers: {}, socksAuth });
      const up = net.connect(port, "127.0.0.1", () => {
        client.write(Buffer.from([5, 0, 0, 1, 127, 0, 0, 1, port >> 8, port & 0xff]));
        splice(client, up);
      });
      up.on("error", () => client.end(Buffer.from([5, 5, 0, 1, 0, 0, 0, 0, 0, 0])));
    };
    client.on("data", onData);
  };
}

/** Starts the proxy (and SOCKS5 port) on 127.0.0.1, ephemeral ports. */
export async function startProxy(o: ProxyOptions = {}): Promise<TestProxy> {
  const log: ProxyLogEntry[] = [];
  const server = o.tls ? tls.createServer(o.tls, onHttp(o, log)) : net.createServer(onHttp(o, log));
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const socks = o.socks ? net.createServer(onSocks(o, log)) : undefined;
  if (socks) await new Promise<void>((r) => socks.listen(0, "127.0.0.1", r));
  return {
    port: (server.address() as net.AddressInfo).port,
    socksPort: socks ? (socks.address() as net.AddressInfo).port : 0,
    log,
    close() {
      server.close();
      socks?.close();
    },
  };
}
