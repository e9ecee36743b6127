/**
 * The Node request handler of the RPC port: connect-node's own building blocks (router,
 * universal request/response conversion), as its connectNodeAdapter does, with two differences.
 * - connect-es reports a request body that is not valid binary protobuf as `internal` (HTTP 500),
 *   which a client cannot tell from a server fault; here it is `invalid_argument` (400), as the
 *   JSON decoder and connect-go report it (docs/security.md "Hostile input").
 * - Compression is gzip only, at the fastest level, in one synchronous call (RPC_COMPRESSION), as
 *   connect-go servers offer: connect-node's default adds brotli at quality 11, about 0.9 s of CPU
 *   for a 600 KB pool answer, which any client could ask for; and gzip's default level 6 costs
 *   ~9.5 ms for that answer against ~1 ms at level 1 (RPC_COMPRESSION), which at 5,000 agents
 *   refetching after a join was most of the server's work (docs/scale.md).
 */
import type http from "node:http";
import type http2 from "node:http2";
import { Code, ConnectError, createConnectRouter, type ConnectRouter, type ContextValues } from "@connectrpc/connect";
import { compressionGzip, universalRequestFromNodeRequest, universalResponseToNodeResponse } from "@connectrpc/connect-node";
import type { Compression, UniversalServerResponse } from "@connectrpc/connect/protocol";

/**
 * The RPC port's one compression: gzip (RFC 1952) written by libdeflate at level 1, read as
 * connect-node reads it (bounded by readMaxBytes after decompression). Written synchronously: a
 * 700 KB pool answer takes ~1 ms of the thread this way, against ~2.5 ms of the thread through
 * node:zlib's asynchronous stream (its machinery runs on the thread too), and libdeflate's level 1
 * writes ~30 % fewer bytes than zlib's (bench/pool.ts).
 */
export const RPC_COMPRESSION: Compression = {
  name: "gzip",
  compress: (bytes) => Promise.resolve(Bun.gzipSync(bytes as Uint8Array<ArrayBuffer>, { level: 1, library: "libdeflate" })),
  decompress: compressionGzip.decompress,
};

type Req = http.IncomingMessage | http2.Http2ServerRequest;
type Res = http.ServerResponse | http2.Http2ServerResponse;

/** Options of the handler. */
export interface RpcHandlerOptions {
  routes: (router: ConnectRouter) => void;
  /**
   * Handlers for requests whose content type is not JSON (binary protobuf: Connect, gRPC,
   * gRPC-web), in place of those of `routes` at the same path (e.g. PushResults read with a schema
   * that leaves results encoded, lib/server/push_raw.ts).
   */
  binaryRoutes?: (router: ConnectRouter) => void;
  /** Largest request body read, after decompression, bytes. */
  readMaxBytes: number;
  contextValues: (req: Req) => ContextValues;
  log: (msg: string, err: unknown) => void;
}

const MALFORMED = JSON.stringify({ code: "invalid_argument", message: "request body is not a valid protobuf message" });

/** A Connect unary error for a malformed binary body becomes invalid_argument; anything else passes. */
async function remapMalformed(res: UniversalServerResponse): Promise<UniversalServerResponse> {
  if (res.status !== 500 || !res.body || !(res.header?.get("Content-Type") ?? "").startsWith("application/json")) return res;
  const chunks: Uint8Array[] = [];
  for await (const c of res.body as AsyncIterable<Uint8Array>) chunks.push(c);
  const text = Buffer.concat(chunks).toString("utf8");
  let malformed = false;
  try {
    const e = JSON.parse(text) as { code?: string; message?: string };
    malformed = e.code === "internal" && (e.message ?? "").startsWith("parse binary:");
  } catch {
    /* not ours to judge */
  }
  const body = malformed ? MALFORMED : text;
  const header = new Headers(res.header);
  header.set("Content-Length", String(Buffer.byteLength(body)));
  return { ...res, status: malformed ? 400 : res.status, header, body: (async function* () { yield Buffer.from(body); })() };
}

/** Builds the handler. Unknown paths get 404. */
export function rpcHandler(o: RpcHandlerOptions): (req: Req, res: Res) => void {
  const handlers = (routes: (router: ConnectRouter) => void) => {
    const router = createConnectRouter({ readMaxBytes: o.readMaxBytes, acceptCompression: [RPC_COMPRESSION] });
    routes(router);
    return new Map(router.handlers.map((h) => [h.requestPath, h]));
  };
  const paths = handlers(o.routes);
  const binaryPaths = o.binaryRoutes ? handlers(o.binaryRoutes) : new Map<string, never>();
  return (req, res) => {
    const path = (req.url ?? "").split("?", 2)[0]!;
    const binary = binaryPaths.get(path);
    const h = binary && !String(req.headers["content-type"] ?? "").includes("json") ? binary : paths.get(path);
    if (!h) {
      (res as http.ServerResponse).writeHead(404);
      res.end();
      return;
    }
    const uReq = universalRequestFromNodeRequest(req, res as http.ServerResponse, undefined, o.contextValues(req));
    h(uReq)
      .then(remapMalformed)
      .then((uRes) => universalResponseToNodeResponse(uRes, res))
      .catch((e) => {
        if (ConnectError.from(e).code !== Code.Aborted) o.log(`handler for ${h.method.name} failed`, e);
      });
  };
}
