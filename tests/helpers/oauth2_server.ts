/**
 * An OAuth 2.0 authorization server for the client credentials grant (RFC 6749 §4.4) and a
 * resource that wants its tokens, for the HTTP probe's oauth2 tests, on 127.0.0.1 (plain HTTP, or
 * HTTPS with a given certificate):
 *
 *   POST /token     form grant_type=client_credentials (scope, other params logged); the client
 *                   authenticated by HTTP Basic (RFC 6749 §2.3.1: id and secret form-encoded) or,
 *                   unless basicOnly, by client_id / client_secret in the form (then a Basic
 *                   attempt is refused with 401 when paramsOnly). Answers a new token "tok-N"
 *                   as JSON {access_token, token_type, expires_in} (or a form with formAnswer).
 *   GET /resource   200 "resource ok" with "Authorization: Bearer <the latest token>", else 401.
 */
import http from "node:http";
import https from "node:https";
import type net from "node:net";

export interface OAuth2ServerOptions {
  clientId: string;
  clientSecret: string;
  /** expires_in of the tokens, seconds (0: none given). */
  expiresIn?: number;
  /** token_type given (default "bearer", lower case as many servers send it). */
  tokenType?: string;
  /** Refuse Basic authentication (401), accept only the form. */
  paramsOnly?: boolean;
  /** Answer as application/x-www-form-urlencoded instead of JSON. */
  formAnswer?: boolean;
  tls?: { key: string; cert: string };
}

/** One token request as received. */
export interface TokenRequest {
  /** How the client authenticated: "basic", "params" or "none" (refused). */
  auth: "basic" | "params" | "none";
  form: Record<string, string>;
  userAgent: string;
}

export interface OAuth2Server {
  port: number;
  url: string;
  requests: TokenRequest[];
  /** Tokens issued so far, in order. */
  issued: string[];
  /** Authorization headers /resource received. */
  resourceAuth: string[];
  close(): void;
}

/** Starts the server on 127.0.0.1 (ephemeral port). */
export async function startOAuth2Server(o: OAuth2ServerOptions): Promise<OAuth2Server> {
  const requests: TokenRequest[] = [];
  const issued: string[] = [];
  const resourceAuth: string[] = [];
  const handler = (req: http.IncomingMessage, res: http.ServerResponse) => {
    const parts: Buffer[] = [];
    req.on("data", (d: Buffer) => parts.push(d));
    req.on("end", () => {
      if (req.url === "/resource") {
        resourceAuth.push(req.headers.authorization ?? "");
        const ok = issued.length > 0 && req.headers.authorization === `Bearer ${issued.at(-1)}`;
        return void res.writeHead(ok ? 200 : 401).end(ok ? "resource ok" : "no token");
      }
      if (req.method !== "POST" || req.url !== "/token") return void res.writeHead(404).end();
      const form = Object.fromEntries(new URLSearchParams(Buffer.concat(parts).toString()));
      const basic = /^Basic (.+)$/.exec(req.headers.authorization ?? "");
      let auth: TokenRequest["auth"] = "none";
      if (basic && !o.paramsOnly) {
        const [id, secret] = Buffer.from(basic[1]!, "base64").toString().split(":").map((x) => decodeURIComponent(x.replace(/\+/g, " ")));
        if (id === o.clientId && secret === o.clientSecret) auth = "basic";
      } else if (!basic && form.client_id === o.clientId && (form.client_secret ?? "") === o.clientSecret) auth = "params";
      requests.push({ auth, form, userAgent: req.headers["user-agent"] ?? "" });
      if (auth === "none" || form.grant_type !== "client_credentials") return void res.writeHead(401, { "Content-Type": "application/json" }).end('{"error":"invalid_client"}');
      const token = `tok-${issued.length + 1}`;
      issued.push(token);
      const answer: Record<string, string | number> = { access_token: token, token_type: o.tokenType ?? "bearer" };
      if (o.expiresIn) answer.expires_in = o.expiresIn;
      if (o.formAnswer) res.writeHead(200, { "Content-Type": "application/x-www-form-urlencoded" }).end(new URLSearchParams(Object.entries(answer).map(([k, v]): [string, string] => [k, String(v)])).toString());
      else res.writeHead(200, { "Content-Type": "application/json" }).end(JSON.stringify(answer));
    });
  };
  const server = o.tls ? https.createServer(o.tls, handler) : http.createServer(handler);
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    url: `${o.tls ? "https" : "http"}://127.0.0.1:${port}`,
    requests,
    issued,
    resourceAuth,
    close() {
      server.closeAllConnections();
      server.close();
    },
  };
}
