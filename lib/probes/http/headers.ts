/**
 * The request headers of a hop, as blackbox_exporter's client builds them: the module's
 * `headers` (Host sets the Host header), User-Agent, Accept-Encoding for `compression`,
 * http_headers, credentials (basic_auth, bearer_token, authorization, an OAuth2 token), the
 * probe's cookies, and Proxy-Authorization for a forward proxy.
 *
 * Credentials do not follow a redirect to another host (Go's net/http makeHeadersCopier, and
 * Prometheus common config's round trippers with isCrossHostRedirect): once a hop's host is
 * neither the first URL's host nor a subdomain of it, this and every later hop of the probe go
 * without Authorization, Cookie, Proxy-Authorization (and the other names of SENSITIVE), without
 * basic_auth / bearer / authorization / OAuth2 credentials, and, stricter than common config,
 * without http_headers' secrets and files. The scheme does not matter (Go compares host names):
 * https -> http on the same host keeps them.
 */
import net from "node:net";
import type { HttpModule } from "../../rpc/gen/probermesh/v1/http_pb.ts";

/** Header names dropped after a redirect to another host (Go's list, common config's sensitiveHeadersOnRedirect). */
const SENSITIVE = new Set(["authorization", "www-authenticate", "cookie", "cookie2", "proxy-authorization", "proxy-authenticate"]);

/** Go's isDomainOrSubdomain: `sub` is `parent` or a subdomain of it (never for an IPv6 literal). */
export function isDomainOrSubdomain(sub: string, parent: string): boolean {
  const s = sub.toLowerCase().replace(/^\[|\]$/g, "");
  const p = parent.toLowerCase().replace(/^\[|\]$/g, "");
  if (s === p) return true;
  if (/[:%]/.test(s)) return false;
  return s.endsWith(p) && s[s.length - p.length - 1] === ".";
}

/** What a hop's headers depend on besides the module. */
export interface HeaderContext {
  url: URL;
  /** The custom Host of `headers`, when it applies to this hop (the first one, and relative redirects from it, as Go). */
  host: string | undefined;
  /** Credentials stay home: the probe has left the first host (sticky). */
  strip: boolean;
  /** An OAuth2 token for this hop (only when not stripped). */
  oauth2?: { type: string; token: string };
  /** The jar's Cookie value for this hop. */
  cookies: string;
  /** Proxy-Authorization for a forward proxy ("" without). */
  proxyAuthorization: string;
  userAgent: string;
}

/** The Authority (Host) and the headers of a hop, in order; Host itself is not in the list. */
export function hopHeaders(m: HttpModule | undefined, c: HeaderContext): { authority: string; headers: [string, string][] } {
  const out: [string, string][] = [];
  const has = (name: string) => out.some(([k]) => k.toLowerCase() === name);
  for (const [k, v] of Object.entries(m?.headers ?? {})) {
    const n = k.toLowerCase();
    if (n === "host" || (c.strip && SENSITIVE.has(n))) continue;
    out.push([k, v]);
  }
  if (!has("user-agent")) out.push(["User-Agent", c.userAgent]);
  if (!has("accept")) out.push(["Accept", "*/*"]);
  if (m?.compression && !has("accept-encoding")) out.push(["Accept-Encoding", m.compression]);
  for (const [k, v] of Object.entries(m?.httpHeaders ?? {})) {
    for (const x of v.values) if (!(c.strip && SENSITIVE.has(k.toLowerCase()))) out.push([k, x]);
    if (!c.strip) for (const x of v.secrets) out.push([k, x]);
  }
  if (!c.strip) {
    // A request header wins over the client's credentials (common config's round trippers), except OAuth2's, which is always set.
    const credentials = c.oauth2
      ? `${c.oauth2.type} ${c.oauth2.token}`
      : m?.basicAuth
        ? `Basic ${Buffer.from(`${m.basicAuth.username}:${m.basicAuth.password}`).toString("base64")}`
        : m?.authorization
          ? `${m.authorization.type} ${m.authorization.credentials}`
          : m?.bearerToken
            ? `Bearer ${m.bearerToken}`
            : "";
    if (c.oauth2) for (let i = out.length - 1; i >= 0; i--) if (out[i]![0].toLowerCase() === "authorization") out.splice(i, 1);
    if (credentials && !has("authorization")) out.push(["Authorization", credentials]);
  }
  if (c.cookies) {
    const i = out.findIndex(([k]) => k.toLowerCase() === "cookie");
    if (i >= 0) out[i] = [out[i]![0], `${out[i]![1]}; ${c.cookies}`];
    else out.push(["Cookie", c.cookies]);
  }
  if (c.proxyAuthorization && !has("proxy-authorization")) out.push(["Proxy-Authorization", c.proxyAuthorization]);
  if (!has("connection")) out.push(["Connection", "close"]);
  const authority = c.host ?? (net.isIP(c.url.hostname.replace(/^\[|\]$/g, "")) === 6 && !c.url.host.startsWith("[") ? `[${c.url.host}]` : c.url.host);
  return { authority, headers: out };
}
