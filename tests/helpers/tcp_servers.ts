/**
 * Local line-protocol servers for the TCP probe tests (loopback only: 127.0.0.1, 127.0.0.2, ::1).
 * A server runs a script per connection against a ServerConn (lines in, lines out, STARTTLS
 * upgrade); ready-made scripts mimic the protocols of blackbox_exporter's example modules:
 *
 *   banner(lines)   writes the lines, then answers QUIT with "221 bye" and closes
 *   irc             NICK / USER, then "PING :<token>"; "PONG <token>" gets "001", anything else "464"
 *   smtp(tls)       220 greeting, EHLO (250-STARTTLS before TLS, 250-AUTH after), STARTTLS, QUIT
 *   pgSsl(tls)      8-byte SSLRequest in, "S" out, then TLS (blackbox's postgresql module)
 *   silent          accepts and never writes
 *   closeAfter(l)   writes the line and closes
 *
 * `peers` records each connection's remote address ("127.0.0.2"), `transcript` the lines each
 * server read, in order. probeTcp runs the TCP prober the way an agent does, on a module written
 * as the `tcp:` block of a probe file and parsed by the server's config code (files read there).
 */
import { mkdtempSync, writeFileSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import tls from "node:tls";
import { create } from "@bufbuild/protobuf";
import { checkTcpResult } from "../../lib/probes/tcp/ingest.ts";
import { TcpProber } from "../../lib/probes/tcp/prober.ts";
import { TcpTargetSchema, type TcpResult } from "../../lib/rpc/gen/probermesh/v1/tcp_pb.ts";
import { parseProbeFile } from "../../lib/targets/config.ts";

/** One accepted connection as a script sees it. */
export class ServerConn {
  private buf = Buffer.alloc(0);
  private ended = false;
  private wake: (() => void) | undefined;

  constructor(public sock: net.Socket, private readonly transcript: string[]) {
    this.listen(sock);
  }

  private listen(s: net.Socket): void {
    s.on("data", (d: Buffer) => {
      this.buf = Buffer.concat([this.buf, d]);
      this.wake?.();
    });
    s.on("end", () => ((this.ended = true), this.wake?.()));
    s.on("close", () => ((this.ended = true), this.wake?.()));
    s.on("error", () => ((this.ended = true), this.wake?.()));
  }

  private until<T>(poll: () => T | undefined): Promise<T> {
    return new Promise((resolve) => {
      const check = () => {
        const v = poll();
        if (v !== undefined) {
          this.wake = undefined;
          resolve(v);
        }
      };
      this.wake = check;
      check();
    });
  }

  /** The next line without "\r\n" / "\n", or null once the client closed. */
  async line(): Promise<string | null> {
    const r = await this.until(() => {
      const nl = this.buf.indexOf(0x0a);
      if (nl >= 0) {
        const line = this.buf.subarray(0, nl).toString("utf8").replace(/\r$/, "");
        this.buf = this.buf.subarray(nl + 1);
        return { line };
      }
      return this.ended ? { line: null } : undefined;
    });
    if (r.line !== null) this.transcript.push(r.line);
    return r.line;
  }

  /** Exactly `n` bytes, or null once the client closed first. */
  async bytes(n: number): Promise<Buffer | null> {
    return (await this.until(() => (this.buf.length >= n ? { b: this.take(n) } : this.ended ? { b: null } : undefined))).b;
  }

  private take(n: number): Buffer {
    const b = this.buf.subarray(0, n);
    this.buf = this.buf.subarray(n);
    return b;
  }

  /** Writes `s` (strings get "\r\n" appended). */
  send(s: string | Uint8Array): void {
    if (!this.sock.destroyed) this.sock.write(typeof s === "string" ? `${s}\r\n` : s);
  }

  /** Server side of a TLS upgrade on this connection; resolves when the handshake is done (false when it failed). */
  startTls(options: tls.TlsOptions): Promise<boolean> {
    const plain = this.sock;
    plain.removeAllListeners("data").removeAllListeners("end").removeAllListeners("close").removeAllListeners("error");
    plain.on("error", () => {});
    this.buf = Buffer.alloc(0);
    const t = new tls.TLSSocket(plain, { ...options, isServer: true });
    this.sock = t;
    this.listen(t);
    return new Promise((resolve) => {
      t.once("secure", () => resolve(true));
      t.once("error", () => resolve(false));
      t.once("close", () => resolve(false));
    });
  }

  end(s?: string): void {
    if (s !== undefined) this.send(s);
    this.sock.end();
  }
}

/** A running server. */
export interface TcpTestServer {
  host: string;
  port: number;
  /** `host:port` as a TCP target (IPv6 bracketed). */
  target: string;
  /** Remote address of every accepted connection, in order. */
  peers: string[];
  /** Every line the server read, in order. */
  transcript: string[];
  close(): Promise<void>;
}

/** Options of startTcpServer: where to listen, and TLS from the first byte (node:tls server options). */
export interface ServerOptions {
  host?: string;
  /** Default: a free port. */
  port?: number;
  tls?: tls.TlsOptions;
}

/** Starts a server that runs `script` on every connection (on a fresh port of `host`, default 127.0.0.1). */
export async function startTcpServer(script: (c: ServerConn) => unknown, opts: ServerOptions = {}): Promise<TcpTestServer> {
  const host = opts.host ?? "127.0.0.1";
  const peers: string[] = [];
  const transcript: string[] = [];
  const sockets = new Set<net.Socket>();
  const onConn = (sock: net.Socket) => {
    sockets.add(sock);
    sock.on("close", () => sockets.delete(sock));
    sock.on("error", () => {});
    peers.push(sock.remoteAddress ?? "");
    Promise.resolve(script(new ServerConn(sock, transcript))).catch(() => sock.destroy());
  };
  const srv = opts.tls ? tls.createServer(opts.tls, onConn) : net.createServer(onConn);
  if (opts.tls) srv.on("tlsClientError", () => {});
  await new Promise<void>((resolve, reject) => {
    srv.once("error", reject);
    srv.listen(opts.port ?? 0, host, () => resolve());
  });
  const port = (srv.address() as net.AddressInfo).port;
  return {
    host, port, peers, transcript,
    target: net.isIPv6(host) ? `[${host}]:${port}` : `${host}:${port}`,
    close: () => {
      for (const s of sockets) s.destroy();
      return new Promise<void>((resolve) => srv.close(() => resolve()));
    },
  };
}

/** A loopback port nothing listens on (bound, then released). */
export async function closedPort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((resolve) => srv.listen(0, "127.0.0.1", () => resolve()));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  return port;
}

/** Writes `lines`, then answers QUIT with "221 bye" and closes; other lines are ignored. */
export const banner = (...lines: string[]) => async (c: ServerConn) => {
  for (const l of lines) c.send(l);
  for (let l = await c.line(); l !== null; l = await c.line()) if (l === "QUIT") return c.end("221 bye");
};

/** Accepts and never writes. */
export const silent = () => () => {};

/** Writes `line` and closes. */
export const closeAfter = (line: string) => (c: ServerConn) => c.end(line);

/** IRC registration with a PING token that the client must echo in its PONG (capture groups). */
export const irc = (token: string) => async (c: ServerConn) => {
  const nick = await c.line();
  const user = await c.line();
  if (!nick?.startsWith("NICK ") || !user?.startsWith("USER ")) return c.end("ERROR :register first");
  c.send(":irc.test NOTICE * :*** Looking up your hostname");
  c.send(`PING :${token}`);
  const pong = await c.line();
  c.end(pong === `PONG ${token}` ? `:irc.test 001 ${nick.slice(5)} :Welcome` : ":irc.test 464 * :Bad PONG");
};

/** An SMTP server with STARTTLS (`tlsOptions`: the server's certificate, client certificate demands ...). */
export const smtp = (tlsOptions: tls.TlsOptions) => async (c: ServerConn) => {
  let secure = false;
  c.send("220 mail.test ESMTP ProberMesh-test");
  for (let l = await c.line(); l !== null; l = await c.line()) {
    if (l.startsWith("EHLO ")) {
      c.send("250-mail.test greets you");
      c.send(secure ? "250-AUTH PLAIN" : "250-STARTTLS");
      c.send("250 SIZE 1000000");
    } else if (l === "STARTTLS" && !secure) {
      c.send("220 2.0.0 Ready to start TLS");
      if (!(await c.startTls(tlsOptions))) return;
      secure = true;
    } else if (l === "QUIT") return c.end("221 2.0.0 bye");
    else c.send("502 5.5.2 unrecognised");
  }
};

/** PostgreSQL's SSLRequest (length 8, code 80877103). */
export const PG_SSL_REQUEST = Buffer.from([0, 0, 0, 8, 4, 0xd2, 0x16, 0x2f]);

/** Answers an SSLRequest with `answer` ("S": TLS follows, "N": no TLS); "S" is followed by a TLS handshake. */
export const pgSsl = (tlsOptions: tls.TlsOptions, answer = "S") => async (c: ServerConn) => {
  const req = await c.bytes(8);
  if (!req?.equals(PG_SSL_REQUEST)) return c.sock.destroy();
  c.send(Buffer.from(answer));
  if (answer === "S") await c.startTls(tlsOptions);
};

const dir = mkdtempSync(`${tmpdir()}/pm-tcp-`);
const prober = new TcpProber();

/**
 * Probes `target` with `moduleYaml` (the lines under `tcp:`). Every result must pass the server's
 * validation (checkTcpResult), so each test also checks what the server would accept.
 */
export async function probeTcp(target: string, moduleYaml = "", signal?: AbortSignal): Promise<TcpResult> {
  const text = `prober_configs:\n  - prober_type: tcp\n    region: r\n    tcp:\n${(moduleYaml || "{}").replace(/^/gm, "      ")}\n    targets: ["${target}"]\n`;
  const file = `${dir}/probe.yaml`;
  writeFileSync(file, text);
  const block = parseProbeFile(text, file).blocks[0]!;
  if (block.proberType !== "tcp") throw new Error("not tcp");
  const r = await prober.probe(create(TcpTargetSchema, { targetRegion: "r", address: block.targets[0]!, module: block.module }), signal);
  const invalid = checkTcpResult(r);
  if (invalid) throw new Error(`the server would reject this result: ${invalid}`);
  return r;
}

/** "ok", or the failed_reason. */
export const reasonOf = (r: TcpResult) => (r.success ? "ok" : r.failedReason);

/** The failed_reason and error, for assertions that show both. */
export const outcome = (r: TcpResult) => ({ reason: reasonOf(r), error: r.error });
