/**
 * The agent's Connect-RPC client (docs/protocol.md, docs/security.md, docs/scale.md): `host:port`
 * or an `http://` URL speaks plaintext, an `https://` URL TLS (the CA of -agent.rpc.tls.ca.file or
 * the system roots; a client certificate for mutual TLS). Every call carries the agent token, when
 * there is one, and a deadline.
 *
 * A comma-separated list of servers (several servers sharing a Redis registry) fails over: calls
 * go to the current server; `unavailable` or an expired deadline moves to the next one; while not
 * on the first, the first is tried again every `failbackMs` and a success moves back.
 */
import { readFileSync } from "node:fs";
import { Code, ConnectError, createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { RPC_DEADLINE_MS } from "../rpc/limits.ts";
import { ProberMeshService } from "../rpc/gen/probermesh/v1/probermesh_pb.ts";

/** How the agent reaches the server. Files are PEM; empty strings mean "not set". */
export interface ClientOptions {
  serverAddr: string;
  /** The agent token ("" = none). Never logged. */
  token: string;
  tlsCaFile: string;
  tlsCertFile: string;
  tlsKeyFile: string;
  /** With several servers: how often to try the first again while on another, milliseconds. */
  failbackMs: number;
}

/** "host:port" or a URL to the server's base URL. */
export function serverBaseUrl(addr: string): string {
  return /^https?:\/\//.test(addr) ? addr.replace(/\/+$/, "") : `http://${addr}`;
}

const read = (file: string, flag: string) => {
  try {
    return readFileSync(file, "utf8");
  } catch (e) {
    throw new Error(`flag -${flag}: cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
};


/** Errors after which the next server is tried: the server is away, not refusing. */
const FAILOVER_CODES = new Set([Code.Unavailable, Code.DeadlineExceeded]);

/** The four RPCs, as the agent uses them. */
export type AgentClient = Pick<Client<typeof ProberMeshService>, "heartbeat" | "getTargetPool" | "pushResults" | "deregister">;

/**
 * Builds the client for one server or a comma-separated list of them.
 * @param onSwitch told the new server's address whenever the agent moves to another server
 * @throws Error naming the flag of an unreadable file or a TLS flag given for a plaintext address
 */
export function rpcClient(o: ClientOptions, onSwitch: (addr: string, why: string) => void = () => {}): AgentClient {
  const addrs = o.serverAddr.split(",").map((a) => a.trim()).filter(Boolean);
  if (addrs.length === 0) throw new Error("flag -agent.rpc.report.addr is empty");
  const clients = addrs.map((serverAddr) => oneClient({ ...o, serverAddr }));
  if (clients.length === 1) return clients[0]!;
  let current = 0;
  let lastFailback = Date.now();
  const call = async <T>(f: (c: AgentClient) => Promise<T>): Promise<T> => {
    // Failback: this call itself goes to the first server; on success it is the answer (the call is
    // made once, never again on the current server). A push whose answer is lost may still reach
    // two servers; its batch identity makes the second one count nothing (docs/protocol.md).
    if (current !== 0 && Date.now() - lastFailback >= o.failbackMs) {
      lastFailback = Date.now();
      try {
        const r = await f(clients[0]!);
        current = 0;
        onSwitch(addrs[0]!, "the first server answers again");
        return r;
      } catch {
        /* still away, or refusing: stay on the current server, which gets the call now */
      }
    }
    // The order is fixed when the call starts: calls run concurrently (heartbeat, sync, push), and
    // one that finishes late must neither retry on a server another call already left nor move
    // the agent back to it.
    const start = current;
    let last: unknown;
    for (let i = 0; i < clients.length; i++) {
      const idx = (start + i) % clients.length;
      try {
        const r = await f(clients[idx]!);
        if (idx !== start && current === start) {
          onSwitch(addrs[idx]!, `${addrs[start]} unreachable: ${ConnectError.from(last).rawMessage}`);
          current = idx;
          lastFailback = Date.now();
        }
        return r;
      } catch (e) {
        if (!FAILOVER_CODES.has(ConnectError.from(e).code)) throw e;
        last = e;
      }
    }
    throw last;
  };
  return {
    heartbeat: (req, opts) => call((c) => c.heartbeat(req, opts)),
    getTargetPool: (req, opts) => call((c) => c.getTargetPool(req, opts)),
    pushResults: (req, opts) => call((c) => c.pushResults(req, opts)),
    deregister: (req, opts) => call((c) => c.deregister(req, opts)),
  };
}

function oneClient(o: ClientOptions): AgentClient {
  const baseUrl = serverBaseUrl(o.serverAddr);
  const tls = baseUrl.startsWith("https://");
  if (!tls && (o.tlsCaFile || o.tlsCertFile)) throw new Error(`the -agent.rpc.tls.* flags need an https:// address in -agent.rpc.report.addr (got ${o.serverAddr})`);
  if (!!o.tlsCertFile !== !!o.tlsKeyFile) throw new Error("flags -agent.rpc.tls.cert.file and -agent.rpc.tls.key.file go together");
  const nodeOptions = tls
    ? {
        ca: o.tlsCaFile ? read(o.tlsCaFile, "agent.rpc.tls.ca.file") : undefined,
        cert: o.tlsCertFile ? read(o.tlsCertFile, "agent.rpc.tls.cert.file") : undefined,
        key: o.tlsKeyFile ? read(o.tlsKeyFile, "agent.rpc.tls.key.file") : undefined,
      }
    : undefined;
  const bearer: Interceptor = (next) => (req) => {
    req.header.set("Authorization", `Bearer ${o.token}`);
    return next(req);
  };
  return createClient(ProberMeshService, createConnectTransport({
    baseUrl, httpVersion: "1.1", useBinaryFormat: true, nodeOptions, defaultTimeoutMs: RPC_DEADLINE_MS,
    interceptors: o.token ? [bearer] : [],
  }));
}
