/**
 * Proxies as Prometheus common config (and so blackbox_exporter) uses them through Go's
 * net/http: which proxy a request takes (proxy_url; with no_proxy or proxy_from_environment,
 * golang.org/x/net/http/httpproxy's rules), and the tunnels: HTTP CONNECT (RFC 9110 §9.3.6) for
 * https targets, SOCKS5 (RFC 1928, user/password RFC 1929) for any. Plain http targets through an
 * http(s) proxy need no tunnel: the request goes to the proxy in absolute-form (h1.ts).
 */
import net from "node:net";
import type { HttpProxy } from "../../rpc/gen/probermesh/v1/http_pb.ts";
import { ProbeFailure } from "./failure.ts";

/** Go's httpproxy.parseProxy: a URL, or "http://" + it when it has no scheme or host. @throws Error */
export function parseProxyUrl(s: string): URL {
  try {
    const u = new URL(s);
    if (u.host) return u;
  } catch {
    // retried with http:// below
  }
  return new URL(`http://${s}`);
}

/** An IP as a bigint and its family's bit length; null when `s` is not an IP. */
function ipBits(s: string): { v: bigint; bits: number } | null {
  const fam = net.isIP(s);
  if (fam === 4) return { v: s.split(".").reduce((a, o) => (a << 8n) | BigInt(Number(o)), 0n), bits: 32 };
  if (fam !== 6) return null;
  let text = s;
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (v4) {
    const n = ipBits(v4[1]!)!.v;
    text = text.replace(v4[1]!, `${(n >> 16n).toString(16)}:${(n & 0xffffn).toString(16)}`);
  }
  const [l, r] = text.split("::") as [string, string | undefined];
  const left = l ? l.split(":") : [];
  const right = r ? r.split(":") : [];
  const groups = r === undefined ? left : [...left, ...Array(8 - left.length - right.length).fill("0"), ...right];
  return { v: groups.reduce((a, g) => (a << 16n) | BigInt(parseInt(g || "0", 16)), 0n), bits: 128 };
}

/** A no_proxy entry: Go's httpproxy matchers (all, CIDR, IP with optional port, domain with optional port). */
type NoProxyMatcher = { all: true } | { cidr: { v: bigint; bits: number; prefix: number } } | { ip: bigint; bits: number; port: string } | { domain: string; port: string; matchHost: boolean };

/** Go's httpproxy config.init: parses a NO_PROXY list. */
export function parseNoProxy(list: string): NoProxyMatcher[] {
  const out: NoProxyMatcher[] = [];
  for (const raw of list.split(",")) {
    const p = raw.trim().toLowerCase();
    if (!p) continue;
    if (p === "*") return [{ all: true }];
    const slash = p.indexOf("/");
    if (slash > 0) {
      const ip = ipBits(p.slice(0, slash));
      const prefix = Number(p.slice(slash + 1));
      if (ip && /^\d+$/.test(p.slice(slash + 1)) && prefix <= ip.bits) {
        out.push({ cidr: { ...ip, prefix } });
        continue;
      }
    }
    let host = p;
    let port = "";
    const hp = /^\[([^\]]*)\]:(\d*)$/.exec(p) ?? (net.isIP(p) === 6 ? null : /^([^:]*):(\d*)$/.exec(p));
    if (hp) {
      if (!hp[1]) continue; // no host part: malformed, ignored as Go does
      [host, port] = [hp[1], hp[2]!];
    }
    const ip = ipBits(host);
    if (ip) {
      out.push({ ip: ip.v, bits: ip.bits, port });
      continue;
    }
    if (host.startsWith("*.")) host = host.slice(1);
    const matchHost = !host.startsWith(".");
    out.push({ domain: matchHost ? `.${host}` : host, port, matchHost });
  }
  return out;
}

/** Go's httpproxy useProxy: false for localhost, loopback addresses and no_proxy matches. */
export function useProxy(hostname: string, port: string, noProxy: NoProxyMatcher[]): boolean {
  const host = hostname.replace(/^\[|\]$/g, "").toLowerCase();
  if (host === "localhost") return false;
  const ip = ipBits(host);
  if (ip && (ip.bits === 32 ? ip.v >> 24n === 127n : ip.v === 1n)) return false;
  for (const m of noProxy) {
    if ("all" in m) return false;
    if ("cidr" in m) {
      if (ip && ip.bits === m.cidr.bits && ip.v >> BigInt(ip.bits - m.cidr.prefix) === m.cidr.v >> BigInt(m.cidr.bits - m.cidr.prefix)) return false;
    } else if ("ip" in m) {
      if (ip && ip.bits === m.bits && ip.v === m.ip && (m.port === "" || m.port === port)) return false;
    } else if (host.endsWith(m.domain) || (m.matchHost && host === m.domain.slice(1))) {
      if (m.port === "" || m.port === port) return false;
    }
  }
  return true;
}

/**
 * The proxy a request to `target` takes under the module's settings, or null for a direct
 * connection: proxy_url alone proxies every request (Go's http.ProxyURL); with no_proxy, or from
 * the environment (HTTP_PROXY / HTTPS_PROXY by the target's scheme, NO_PROXY; upper case first),
 * httpproxy's rules apply, which never proxy localhost or loopback addresses.
 * @throws ProbeFailure("proxy") when the environment's proxy is not a URL
 */
export function proxyFor(target: URL, p: HttpProxy | undefined, env: NodeJS.ProcessEnv = process.env): URL | null {
  if (!p) return null;
  let proxy: string;
  let noProxy: string;
  if (p.proxyFromEnvironment) {
    const any = (...names: string[]) => names.map((n) => env[n]).find((v) => v) ?? "";
    proxy = target.protocol === "https:" ? any("HTTPS_PROXY", "https_proxy") : any("HTTP_PROXY", "http_proxy");
    noProxy = any("NO_PROXY", "no_proxy");
  } else {
    proxy = p.proxyUrl;
    noProxy = p.noProxy;
    if (proxy && !noProxy) return parseProxyUrl(proxy);
  }
  if (!proxy) return null;
  const port = target.port || (target.protocol === "https:" ? "443" : "80");
  if (!useProxy(target.hostname, port, parseNoProxy(noProxy))) return null;
  try {
    return parseProxyUrl(proxy);
  } catch {
    throw new ProbeFailure("proxy", `invalid proxy address ${JSON.stringify(proxy)} in the environment`);
  }
}

/** The proxy URL's credentials as Proxy-Authorization (Go's proxyAuth), or "" without. */
export function proxyAuthorization(proxy: URL): string {
  if (!proxy.username && !proxy.password) return "";
  return `Basic ${Buffer.from(`${decodeURIComponent(proxy.username)}:${decodeURIComponent(proxy.password)}`).toString("base64")}`;
}

/**
 * Reads from `sock` until `enough(buffered)` returns a length (the bytes it consumed); the rest
 * is put back. Settles once (enough, error, close, deadline, abort) and removes its listeners.
 */
function readUntil(sock: net.Socket, enough: (b: Buffer) => number | null, deadline: number, what: string, signal?: AbortSignal): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0);
    let settled = false;
    const settle = (err: Error | null, n = 0) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
      sock.off("data", onData).off("error", onError).off("close", onClose).off("end", onClose);
      if (err) return reject(err);
      const rest = buf.subarray(n);
      if (rest.length) sock.unshift(rest);
      resolve(buf.subarray(0, n));
    };
    const timer = setTimeout(() => settle(new ProbeFailure("timeout", `timed out waiting for the proxy's ${what}`)), Math.max(0, deadline - performance.now()));
    const onAbort = () => settle(new ProbeFailure("timeout", "aborted"));
    const onData = (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      if (buf.length > 64 * 1024) return settle(new ProbeFailure("proxy", `proxy's ${what} larger than 64 KiB`));
      try {
        const n = enough(buf);
        if (n !== null) settle(null, n);
      } catch (e) {
        settle(e as Error);
      }
    };
    const onError = (e: Error) => settle(new ProbeFailure("proxy", `proxy connection: ${e.message}`));
    const onClose = () => settle(new ProbeFailure("proxy", `proxy closed the connection before its ${what}`));
    sock.on("data", onData).once("error", onError).once("close", onClose).once("end", onClose);
    signal?.addEventListener("abort", onAbort, { once: true });
    if (signal?.aborted) onAbort();
  });
}

/**
 * Opens a CONNECT tunnel to `authority` (host:port) on `sock` (connected to the proxy): sends
 * CONNECT with Host, the proxy_connect_header values and Proxy-Authorization from the proxy URL
 * (which wins, as in Go), and waits for the proxy's answer.
 * @throws ProbeFailure("proxy") unless the answer is 200 (Go's transport accepts nothing else); "timeout"
 */
export async function connectTunnel(sock: net.Socket, authority: string, headers: [string, string][], deadline: number, signal?: AbortSignal): Promise<void> {
  const lines = [`CONNECT ${authority} HTTP/1.1`, `Host: ${authority}`, ...headers.map(([k, v]) => `${k}: ${v}`)];
  sock.write(`${lines.join("\r\n")}\r\n\r\n`);
  const head = await readUntil(sock, (b) => (b.indexOf("\r\n\r\n") >= 0 ? b.indexOf("\r\n\r\n") + 4 : null), deadline, "answer to CONNECT", signal);
  const status = head.toString("latin1").split("\r\n")[0]!;
  const m = /^HTTP\/\d(?:\.\d)? (\d{3})(?: (.*))?$/.exec(status);
  if (!m) throw new ProbeFailure("proxy", `proxy answered CONNECT with "${status.slice(0, 80)}"`);
  if (m[1] !== "200") throw new ProbeFailure("proxy", `proxy refused CONNECT ${authority}: ${m[1]} ${m[2] ?? ""}`.trim());
}

const SOCKS_REPLIES = ["succeeded", "general SOCKS server failure", "connection not allowed by ruleset", "network unreachable", "host unreachable", "connection refused", "TTL expired", "command not supported", "address type not supported"];

/**
 * SOCKS5 CONNECT to host:port on `sock` (connected to the proxy), with the proxy URL's
 * user:password when it has them (RFC 1929), as Go's socks dialer. An IP literal is sent as an
 * address, a name as a domain name (the proxy resolves it).
 * @throws ProbeFailure("proxy") on a refusal or a malformed answer; "timeout"
 */
export async function socks5Tunnel(sock: net.Socket, host: string, port: number, proxy: URL, deadline: number, signal?: AbortSignal): Promise<void> {
  const user = decodeURIComponent(proxy.username);
  const pass = decodeURIComponent(proxy.password);
  const auth = user || pass;
  sock.write(Buffer.from(auth ? [5, 2, 0, 2] : [5, 1, 0]));
  const choice = await readUntil(sock, (b) => (b.length >= 2 ? 2 : null), deadline, "SOCKS5 method choice", signal);
  if (choice[0] !== 5) throw new ProbeFailure("proxy", `not a SOCKS5 proxy (version ${choice[0]})`);
  if (choice[1] === 2 && auth) {
    sock.write(Buffer.concat([Buffer.from([1, Buffer.byteLength(user)]), Buffer.from(user), Buffer.from([Buffer.byteLength(pass)]), Buffer.from(pass)]));
    const ok = await readUntil(sock, (b) => (b.length >= 2 ? 2 : null), deadline, "SOCKS5 authentication answer", signal);
    if (ok[1] !== 0) throw new ProbeFailure("proxy", "SOCKS5 proxy refused the user name and password");
  } else if (choice[1] !== 0) throw new ProbeFailure("proxy", `SOCKS5 proxy accepts no offered authentication method (it chose ${choice[1]})`);
  const bare = host.replace(/^\[|\]$/g, "");
  const fam = net.isIP(bare);
  const addr = fam === 4 ? Buffer.from([1, ...bare.split(".").map(Number)])
    : fam === 6 ? Buffer.concat([Buffer.from([4]), Buffer.from(ipBits(bare)!.v.toString(16).padStart(32, "0"), "hex")])
    : Buffer.concat([Buffer.from([3, Buffer.byteLength(bare)]), Buffer.from(bare)]);
  sock.write(Buffer.concat([Buffer.from([5, 1, 0]), addr, Buffer.from([port >> 8, port & 0xff])]));
  const reply = await readUntil(sock, (b) => {
    if (b.length < 5) return null;
    const len = b[3] === 1 ? 4 : b[3] === 4 ? 16 : b[3] === 3 ? 1 + b[4]! : -1;
    if (len < 0) throw new ProbeFailure("proxy", `SOCKS5 reply with address type ${b[3]}`);
    return b.length >= 4 + len + 2 ? 4 + len + 2 : null;
  }, deadline, "SOCKS5 reply", signal);
  if (reply[1] !== 0) throw new ProbeFailure("proxy", `SOCKS5 proxy could not connect to ${host}:${port}: ${SOCKS_REPLIES[reply[1]!] ?? `reply ${reply[1]}`}`);
}
