/**
 * DNS targets as blackbox_exporter's dns prober takes them: the DNS server as `host[:port]`,
 * `[v6][:port]` or a bare IPv6 literal (Go's net.SplitHostPort, and without a port the whole
 * target is the host); the port defaults to 53, or 853 with dns_over_tls (RFC 7858).
 */
import { isIP } from "node:net";
import { isHostOrIp } from "../address.ts";
import { canonicalIpv6 } from "../host_port.ts";

/** blackbox's default ports: DNS (RFC 1035) and DNS over TLS (RFC 7858). */
export const DNS_PORT = 53;
export const DOT_PORT = 853;

/** A target split into host (an IPv6 literal without brackets) and port (undefined when not written). */
export interface DnsServer {
  host: string;
  port: number | undefined;
}


/**
 * Splits a target. @returns host and port, or null when it is not `host[:port]`, `[v6][:port]` or
 * a bare IPv6 literal with a valid host name or IP and a port in 1..65535
 */
export function parseDnsTarget(s: string): DnsServer | null {
  let host: string;
  let port: string | undefined;
  const bracket = /^\[([^\]]+)\](?::(\d{1,5}))?$/.exec(s);
  if (bracket) {
    [host, port] = [bracket[1]!, bracket[2]];
    if (isIP(host) !== 6) return null;
  } else if (isIP(s) === 6) {
    host = s;
  } else {
    const m = /^([^:[\]\s/]+)(?::(\d{1,5}))?$/.exec(s);
    if (!m) return null;
    [host, port] = [m[1]!, m[2]];
    if (!isHostOrIp(host)) return null;
  }
  const p = port === undefined ? undefined : Number(port);
  if (p !== undefined && (p < 1 || p > 65535)) return null;
  return { host: isIP(host) === 6 ? canonicalIpv6(host) : host.toLowerCase(), port: p };
}

/**
 * The canonical form of a target (target_addr label): host names in lower case, IPv6 literals in
 * brackets and RFC 5952 form, the port kept only when written (its default depends on the module).
 * @returns null when `s` is not a DNS server address
 */
export function normaliseDnsTarget(s: string): string | null {
  const t = parseDnsTarget(s);
  if (!t) return null;
  const host = isIP(t.host) === 6 ? `[${t.host}]` : t.host;
  return t.port === undefined ? host : `${host}:${t.port}`;
}
