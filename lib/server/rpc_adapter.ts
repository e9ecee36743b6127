/**
 * The Node request handler of the RPC port: connect-node's own building blocks (router,
 * universal request/response conversion), as its connectNodeAdapter does, with one difference.
 * connect-es reports a request body that is not valid binary protobuf as `internal` (HTTP 500),
 * which a client cannot tell from a server fault; here it is `invalid_argument` (400), as the JSON
 * decoder and connect-go report it (docs/security.md "Hostile input").
 */
import type http from "node:http";
import type http2 from "node:http2";
import { Code, ConnectError, createConnectRouter, type ConnectRouter, type ContextValues } from "@connectrpc/connect";
import { compressionBrotli, compressionGzip, universalRequestFromNodeRequest, universalResponseToNodeResponse } from "@connectrpc/connect-node";
import type { UniversalServerResponse } from "@connectrpc/connect/protocol";

type Req = http.IncomingMessage | http2.Http2ServerRequest;
type Res = http.ServerResponse | http2.Http2ServerResponse;

/** Options of the handler. */
export interface RpcHandlerOptions {
  routes: (router: ConnectRouter) => void;
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
  const router = createConnectRouter({ readMaxBytes: o.readMaxBytes, acceptCompression: [compressionGzip, compressionBrotli] });
  o.routes(router);
  const paths = new Map(router.handlers.map((h) => [h.requestPath, h]));
  return (req, res) => {
    const h = paths.get((req.url ?? "").split("?", 2)[0]!);
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
