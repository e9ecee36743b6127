/**
 * OAuth 2.0 client credentials (RFC 6749 §4.4) as Prometheus common config does it with
 * golang.org/x/oauth2/clientcredentials: a POST to token_url (form: grant_type=client_credentials,
 * scope = the scopes joined by spaces, endpoint_params), the client authenticated with HTTP Basic
 * (id and secret form-escaped) and, if the server refuses that, with client_id / client_secret in
 * the form (x/oauth2's AuthStyleAutoDetect, remembered per token_url and client). The answer (JSON,
 * or a form for application/x-www-form-urlencoded and text/plain) gives access_token, token_type
 * and expires_in. Tokens are cached per agent and oauth2 settings until 10 s before they expire
 * (x/oauth2's expiryDelta); one without expires_in is kept until the agent restarts, as in Go.
 * The token request uses oauth2's own tls_config and proxy settings, over HTTP/1.1.
 */
import type net from "node:net";
import { toJsonString } from "@bufbuild/protobuf";
import { HttpOAuth2Schema, type HttpOAuth2 } from "../../rpc/gen/probermesh/v1/http_pb.ts";
import { BodySink } from "./body.ts";
import { openConnection } from "./conn.ts";
import { ProbeFailure } from "./failure.ts";
import { exchangeH1 } from "./h1.ts";
import { headerValue } from "./response.ts";

/** A token to send: "Authorization: <type> <token>". */
export interface OAuth2Token {
  type: string;
  token: string;
}

/** x/oauth2's expiryDelta: a token is renewed this long before it expires. */
const EXPIRY_DELTA_MS = 10_000;
/** Token answers larger than this are refused. */
const MAX_TOKEN_RESPONSE = 1 << 20;

const tokens = new Map<string, { token: OAuth2Token; expiresAt: number } | Promise<OAuth2Token>>();
/** Whether a token endpoint wants the client in the form rather than in Basic auth (AuthStyleAutoDetect's memory). */
const inParams = new Map<string, boolean>();

/** x/oauth2's Token.Type(): bearer/mac/basic capitalised as their schemes, "" -> Bearer. */
function tokenType(t: string): string {
  const l = t.toLowerCase();
  return l === "" || l === "bearer" ? "Bearer" : l === "mac" ? "MAC" : l === "basic" ? "Basic" : t;
}

/** Go's url.Values.Encode: keys sorted, QueryEscape'd. */
function formEncode(v: Record<string, string>): string {
  return Object.keys(v).sort().map((k) => `${encodeURIComponent(k)}=${encodeURIComponent(v[k]!)}`.replace(/%20/g, "+")).join("&");
}

/** One POST over the agent's own stack (proxy and TLS settings of oauth2), bounded by the deadline. */
async function post(o: HttpOAuth2, form: string, basic: string | null, userAgent: string, deadline: number, signal?: AbortSignal): Promise<{ status: number; type: string; body: string }> {
  const url = new URL(o.tokenUrl);
  const sockets: net.Socket[] = [];
  const phases = { resolve: 0, connect: 0, tls: 0, processing: 0, transfer: 0 };
  try {
    const c = await openConnection(url, { tlsHost: url.hostname.replace(/^\[|\]$/g, ""), proxy: o.proxy, tlsConfig: o.tlsConfig, insecure: false, alpn: ["http/1.1"], skipResolveWithProxy: false, preferIp6: false, fallback: true, deadline, signal }, phases, (s) => sockets.push(s));
    const headers: [string, string][] = [["User-Agent", userAgent], ["Content-Type", "application/x-www-form-urlencoded"], ["Accept", "application/json"], ["Connection", "close"]];
    if (basic) headers.push(["Authorization", basic]);
    if (c.forward?.proxyAuthorization) headers.push(["Proxy-Authorization", c.forward.proxyAuthorization]);
    const sink = new BodySink({ compression: "", limit: MAX_TOKEN_RESPONSE, keep: true });
    const target = c.forward ? `${url.protocol}//${url.host}${url.pathname}${url.search}` : `${url.pathname}${url.search}`;
    const head = await exchangeH1(c.sock, { method: "POST", target, authority: url.host, scheme: url.protocol.slice(0, -1), headers, body: Buffer.from(form) }, sink, deadline, phases, signal);
    return { status: head.status, type: headerValue(head, "content-type") ?? "", body: sink.bytes().toString("utf8") };
  } finally {
    for (const s of sockets) s.destroy();
  }
}

/** x/oauth2's internal.RetrieveToken's parsing of a 2xx answer. @throws Error */
function parseToken(type: string, body: string): { token: OAuth2Token; expiresInS: number } {
  const media = type.split(";")[0]!.trim().toLowerCase();
  let access: unknown, kind: unknown, expires: unknown;
  if (media === "application/x-www-form-urlencoded" || media === "text/plain") {
    const f = new URLSearchParams(body);
    [access, kind, expires] = [f.get("access_token") ?? "", f.get("token_type") ?? "", f.get("expires_in") ?? ""];
  } else {
    let j: Record<string, unknown>;
    try {
      j = JSON.parse(body) as Record<string, unknown>;
    } catch (e) {
      throw new Error(`oauth2: cannot parse json: ${(e as Error).message}`);
    }
    [access, kind, expires] = [j.access_token, j.token_type, j.expires_in];
  }
  if (typeof access !== "string" || access === "") throw new Error("oauth2: server response missing access_token");
  const n = Number(expires ?? 0);
  return { token: { type: tokenType(typeof kind === "string" ? kind : ""), token: access }, expiresInS: Number.isFinite(n) && n > 0 ? n : 0 };
}

/** Fetches a token: Basic auth first, then (if refused, or remembered so) the client in the form. */
async function fetchToken(o: HttpOAuth2, userAgent: string, deadline: number, signal?: AbortSignal): Promise<{ token: OAuth2Token; expiresInS: number }> {
  const form: Record<string, string> = { grant_type: "client_credentials" };
  if (o.scopes.length) form.scope = o.scopes.join(" ");
  Object.assign(form, o.endpointParams);
  const styleKey = `${o.tokenUrl}\n${o.clientId}`;
  const basic = `Basic ${Buffer.from(`${encodeURIComponent(o.clientId).replace(/%20/g, "+")}:${encodeURIComponent(o.clientSecret).replace(/%20/g, "+")}`).toString("base64")}`;
  const inForm = () => post(o, formEncode({ ...form, client_id: o.clientId, ...(o.clientSecret ? { client_secret: o.clientSecret } : {}) }), null, userAgent, deadline, signal);
  let r = inParams.get(styleKey) ? await inForm() : await post(o, formEncode(form), basic, userAgent, deadline, signal);
  if ((r.status < 200 || r.status > 299) && !inParams.has(styleKey)) {
    const second = await inForm();
    if (second.status >= 200 && second.status <= 299) inParams.set(styleKey, true);
    r = second;
  } else if (!inParams.has(styleKey)) inParams.set(styleKey, false);
  if (r.status < 200 || r.status > 299) throw new Error(`oauth2: cannot fetch token: ${r.status}: ${r.body.slice(0, 200)}`);
  return parseToken(r.type, r.body);
}

/**
 * A valid token for `o`, from the cache or the token endpoint (one request at a time per
 * settings; probes that ask meanwhile share it).
 * @param deadline performance.now() milliseconds: the probe's
 * @throws ProbeFailure("oauth2")
 */
export async function oauth2Token(o: HttpOAuth2, userAgent: string, deadline: number, signal?: AbortSignal): Promise<OAuth2Token> {
  const key = toJsonString(HttpOAuth2Schema, o);
  const cached = tokens.get(key);
  if (cached instanceof Promise) return cached;
  if (cached && performance.now() < cached.expiresAt - EXPIRY_DELTA_MS) return cached.token;
  const pending = fetchToken(o, userAgent, deadline, signal).then(
    ({ token, expiresInS }) => {
      if (tokens.size > 256) tokens.clear();
      tokens.set(key, { token, expiresAt: expiresInS > 0 ? performance.now() + expiresInS * 1000 : Infinity });
      return token;
    },
    (e: Error) => {
      tokens.delete(key);
      const msg = e instanceof ProbeFailure && e.reason === "timeout" ? `timed out fetching the token (${e.message})` : e.message;
      throw new ProbeFailure("oauth2", `token from ${o.tokenUrl}: ${msg}`);
    },
  );
  tokens.set(key, pending);
  return pending;
}

/** Forgets every cached token (tests). */
export function clearOAuth2Tokens(): void {
  tokens.clear();
  inParams.clear();
}
