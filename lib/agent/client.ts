/**
 * The agent's Connect-RPC client (docs/protocol.md, docs/security.md): `host:port` or an
 * `http://` URL speaks plaintext, an `https://` URL TLS (the CA of -agent.rpc.tls.ca.file or the
 * system roots; a client certificate for mutual TLS). Every call carries the agent token, when
 * there is one, and a deadline.
 */
import { readFileSync } from "node:fs";
import { createClient, type Client, type Interceptor } from "@connectrpc/connect";
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

/** Builds the client. @throws Error naming the flag of an unreadable file or a TLS flag given for a plaintext address */
export function rpcClient(o: ClientOptions): Client<typeof ProberMeshService> {
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
