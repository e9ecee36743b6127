/**
 * The RPC port's front door (docs/security.md): with a token file, every request must carry
 * `Authorization: Bearer <token>`; a missing or unknown token is refused with Connect's
 * `unauthenticated` (HTTP 401) before the body is read, counted, and creates nothing. The token's
 * entry and the peer's address go to the service as Connect context values.
 */
import type http from "node:http";
import type http2 from "node:http2";
import { createContextKey, createContextValues, type ContextValues } from "@connectrpc/connect";
import type { AuthFailure, TokenEntry, TokenStore } from "./tokens.ts";

/** The token entry that authenticated the request (undefined without a token file). */
export const kToken = createContextKey<TokenEntry | undefined>(undefined, { description: "ProberMesh agent token" });
/** The TCP peer's address. */
export const kPeer = createContextKey<string>("", { description: "peer address" });

type Req = http.IncomingMessage | http2.Http2ServerRequest;
type Res = http.ServerResponse | http2.Http2ServerResponse;

const TOKEN = Symbol("probermesh.token");

/** Writes a Connect unary error (JSON body with `code` and `message`) and ends the response. */
export function writeConnectError(res: Res, status: number, code: string, message: string): void {
  const body = JSON.stringify({ code, message });
  (res as http.ServerResponse).writeHead(status, { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(body) });
  res.end(body);
}

/**
 * Wraps the Connect handler with the token check. `tokens()` returns the current store (it is
 * swapped on reload) or undefined when authentication is off.
 */
export function rpcGate(tokens: () => TokenStore | undefined, refused: (reason: AuthFailure) => void, handler: (req: Req, res: Res) => void) {
  return (req: Req, res: Res) => {
    const store = tokens();
    if (store) {
      const r = store.check(req.headers.authorization as string | undefined);
      if (typeof r === "string") {
        refused(r);
        // The body is never read: drain-free close for HTTP/1.1 keeps the connection usable.
        return writeConnectError(res, 401, "unauthenticated", r === "missing" ? "missing Authorization: Bearer token" : "unknown token");
      }
      (req as unknown as Record<symbol, TokenEntry>)[TOKEN] = r;
    }
    handler(req, res);
  };
}

/** Connect context values for a request that passed the gate. */
export function requestContext(req: Req): ContextValues {
  return createContextValues()
    .set(kToken, (req as unknown as Record<symbol, TokenEntry | undefined>)[TOKEN])
    .set(kPeer, req.socket?.remoteAddress ?? "");
}
