/**
 * `host:port` targets (the tcp and grpc kinds) as blackbox_exporter writes them (Go's
 * net.SplitHostPort / JoinHostPort):
 * `host:port`, `1.2.3.4:port`, `[v6]:port` (optionally `[fe80::1%eth0]:port`). Ports are numbers
 * 1..65535 (Go would also look up service names such as `smtp`: not taken, a label should not
 * depend on an agent's /etc/services).
 */
import { isIP } from "node:net";
import { isHostOrIp } from "./address.ts";

/** A target's parts: `host` without brackets (name, IPv4 or IPv6 literal), `port` 1..65535. */
export interface HostPort {
  host: string;
  port: number;
}

/** RFC 5952 text of an IPv6 literal (lower case, longest zero run compressed, IPv4-mapped dotted); the zone is kept. */
export function canonicalIpv6(a: string): string {
  const [addr, zone] = a.split("%", 2) as [string, string | undefined];
  const h = new URL(`http://[${addr}]/`).hostname.slice(1, -1);
  const mapped = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(h);
  const v6 = mapped ? `::ffff:${[mapped[1]!, mapped[2]!].flatMap((w) => { const n = parseInt(w, 16); return [n >> 8, n & 255]; }).join(".")}` : h;
  return zone ? `${v6}%${zone}` : v6;
}

/** Splits `host:port` / `[v6]:port`; null when it is not one (no port, port out of range, bare IPv6, bad host). */
export function splitHostPortTarget(s: string): HostPort | null {
  const m = /^(?:\[([^\]\s]+)\]|([^:[\]\s/]+)):(\d{1,5})$/.exec(s);
  if (!m) return null;
  const port = Number(m[3]);
  if (port < 1 || port > 65535) return null;
  if (m[1] !== undefined) {
    const [addr, zone] = m[1].split("%", 2) as [string, string | undefined];
    if (isIP(addr) !== 6 || zone === "" || (zone !== undefined && !/^[\w.-]+$/.test(zone))) return null;
    return { host: m[1], port };
  }
  return isHostOrIp(m[2]!) ? { host: m[2]!, port } : null;
}

/**
 * The canonical form of a `host:port` target (its target_addr), or null when it is not one: a
 * name lower-cased (DNS names are case-insensitive: one target, one target_addr), IPv6 in
 * RFC 5952 form, the port without leading zeros.
 */
export function normaliseHostPortTarget(s: string): string | null {
  const hp = splitHostPortTarget(s);
  if (!hp) return null;
  return isIP(hp.host.split("%")[0]!) === 6 ? `[${canonicalIpv6(hp.host)}]:${hp.port}` : `${hp.host.toLowerCase()}:${hp.port}`;
}
