/**
 * A cookie jar for one probe, as blackbox_exporter gives each probe a fresh net/http/cookiejar:
 * cookies set by a response (Set-Cookie, RFC 6265 §5.2) are sent with the later requests of the
 * same probe that they match (§5.4: domain, path, Secure, not expired). Nothing outlives the
 * probe. Unlike Go's jar with the public suffix list, a Domain attribute naming a public suffix
 * (Domain=com) is not refused here; the jar dies with the probe, so only the probe's own
 * redirect chain could see such a cookie.
 */

interface Cookie {
  name: string;
  value: string;
  domain: string;
  hostOnly: boolean;
  path: string;
  secure: boolean;
  /** Date.now() milliseconds; Infinity for a session cookie. */
  expires: number;
}

/** §5.1.3 domain-match: equal, or a suffix after a dot of a name (never of an IP). */
function domainMatch(host: string, domain: string): boolean {
  return host === domain || (host.endsWith(`.${domain}`) && !/^[\d.]+$|:/.test(host));
}

/** §5.1.4 path-match. */
function pathMatch(reqPath: string, cookiePath: string): boolean {
  return reqPath === cookiePath || (reqPath.startsWith(cookiePath) && (cookiePath.endsWith("/") || reqPath[cookiePath.length] === "/"));
}

/** §5.1.4 default-path: the request path up to its last "/". */
function defaultPath(p: string): string {
  const i = p.lastIndexOf("/");
  return !p.startsWith("/") || i <= 0 ? "/" : p.slice(0, i);
}

/** The cookies of one probe. */
export class CookieJar {
  private cookies: Cookie[] = [];

  /** Stores the Set-Cookie values of a response to `url`. */
  store(url: URL, setCookies: string[]): void {
    const host = url.hostname.toLowerCase();
    for (const line of setCookies) {
      const [pair, ...attrs] = line.split(";");
      const eq = pair!.indexOf("=");
      if (eq <= 0) continue;
      const c: Cookie = { name: pair!.slice(0, eq).trim(), value: pair!.slice(eq + 1).trim(), domain: host, hostOnly: true, path: defaultPath(url.pathname), secure: false, expires: Infinity };
      let maxAge: number | undefined;
      let bad = false;
      for (const a of attrs) {
        const i = a.indexOf("=");
        const k = (i < 0 ? a : a.slice(0, i)).trim().toLowerCase();
        const v = i < 0 ? "" : a.slice(i + 1).trim();
        if (k === "domain" && v) {
          const d = v.replace(/^\./, "").toLowerCase();
          if (!domainMatch(host, d)) bad = true;
          else if (d !== host) [c.domain, c.hostOnly] = [d, false];
        } else if (k === "path" && v.startsWith("/")) c.path = v;
        else if (k === "secure") c.secure = true;
        else if (k === "max-age" && /^-?\d+$/.test(v)) maxAge = Number(v);
        else if (k === "expires" && maxAge === undefined) {
          const t = Date.parse(v);
          if (Number.isFinite(t)) c.expires = t;
        }
      }
      if (bad) continue;
      if (maxAge !== undefined) c.expires = maxAge <= 0 ? 0 : Date.now() + maxAge * 1000;
      this.cookies = this.cookies.filter((o) => !(o.name === c.name && o.domain === c.domain && o.path === c.path));
      if (c.expires > Date.now()) this.cookies.push(c);
    }
  }

  /** The Cookie header value for a request to `url` ("" when none matches), longer paths first (§5.4). */
  header(url: URL): string {
    const host = url.hostname.toLowerCase();
    const now = Date.now();
    return this.cookies
      .filter((c) => c.expires > now && (c.hostOnly ? host === c.domain : domainMatch(host, c.domain)) && pathMatch(url.pathname || "/", c.path) && (!c.secure || url.protocol === "https:"))
      .sort((a, b) => b.path.length - a.path.length)
      .map((c) => `${c.name}=${c.value}`)
      .join("; ");
  }
}
