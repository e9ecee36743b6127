/**
 * The resolve phase shared by both probe types: getaddrinfo (dns.lookup, so /etc/hosts and
 * resolv.conf apply, as in ping and curl), timed. IP literals resolve to themselves in 0 s.
 */
import { lookup } from "node:dns/promises";
import { isIP } from "node:net";

/** Address family preference; "ip4" prefers IPv4 and falls back to IPv6, like blackbox's preferred_ip_protocol. */
export type IpPreference = "ip4" | "ip6";

/** A resolve outcome: the chosen IP and the phase duration in seconds. */
export interface Resolved {
  ip: string;
  seconds: number;
}

/**
 * Resolves `host` (a name or IP literal; IPv6 may be bracketed) to one address of the preferred
 * family, or of the other family when `fallback` (blackbox's ip_protocol_fallback).
 * @throws Error with the resolver's message (ENOTFOUND, EAI_AGAIN, ...) or "no ip6 address for NAME"
 */
export async function resolveHost(host: string, prefer: IpPreference = "ip4", fallback = true): Promise<Resolved> {
  const bare = host.replace(/^\[|\]$/g, "");
  if (isIP(bare)) return { ip: bare, seconds: 0 };
  const start = performance.now();
  const all = await lookup(bare, { all: true });
  const seconds = (performance.now() - start) / 1000;
  const want = prefer === "ip4" ? 4 : 6;
  const pick = all.find((a) => a.family === want) ?? (fallback ? all[0] : undefined);
  if (!pick) throw new Error(`no ${fallback ? "" : `${prefer} `}address for ${bare}`);
  return { ip: pick.address, seconds };
}

/**
 * The `error` text of a round that threw: prefixed "resolve: " when it failed before an address
 * was resolved (the server counts those as resolve failures), the bare message otherwise.
 */
export function roundErrorText(resolvedIp: string, e: unknown): string {
  const msg = e instanceof Error ? e.message : String(e);
  return resolvedIp ? msg : `resolve: ${msg}`;
}
