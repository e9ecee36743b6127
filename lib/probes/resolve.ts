/**
 * The resolve phase shared by both probe types: getaddrinfo (dns.lookup, so /etc/hosts and
 * resolv.conf apply, as in ping and curl), timed. IP literals resolve to themselves in 0 s.
 *
 * A lookup has no deadline of its own beyond resolv.conf's `timeout × attempts` per name server
 * (up to 30 s × 5 each), so a prober bounds it with resolveHostWithin: a round whose resolver does
 * not answer in time fails as a resolve failure instead of hanging (and, because rounds of one
 * target never overlap, silently skipping that target's next rounds).
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

/** The resolver gave no answer before the deadline (the lookup itself may still be pending). */
export class ResolveTimeoutError extends Error {
  override name = "ResolveTimeoutError";
  /** @param timeoutMs the deadline that ran out, milliseconds */
  constructor(readonly timeoutMs: number) {
    super(`no answer from the resolver within ${formatSeconds(timeoutMs)}`);
  }
}

/**
 * resolveHost with a deadline: resolves as resolveHost does, or rejects with ResolveTimeoutError
 * once `timeoutMs` milliseconds have passed without an answer (measured on the event loop's
 * monotonic timers; an IP literal never waits). The lookup cannot be cancelled: it finishes or
 * gives up in the background and its outcome is dropped.
 * @param timeoutMs deadline in milliseconds (≤ 0: fails at once unless `host` is an IP literal)
 * @param signal aborts the wait at once (the probe was aborted): rejects with the signal's reason
 *   and leaves no timer behind
 * @throws ResolveTimeoutError at the deadline; the signal's reason when aborted; otherwise what resolveHost throws
 */
export async function resolveHostWithin(host: string, timeoutMs: number, prefer: IpPreference = "ip4", fallback = true, signal?: AbortSignal): Promise<Resolved> {
  const answer = resolveHost(host, prefer, fallback);
  let timer: ReturnType<typeof setTimeout> | undefined;
  let onAbort: (() => void) | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new ResolveTimeoutError(timeoutMs)), Math.max(0, timeoutMs));
    if (signal) {
      onAbort = () => reject(signal.reason ?? new Error("aborted"));
      if (signal.aborted) onAbort();
      else signal.addEventListener("abort", onAbort, { once: true });
    }
  });
  try {
    // An IP literal settles in a microtask, before any timer: it never fails the deadline. A
    // lookup that settles after the deadline has a handler (race's), so its rejection is dropped.
    return await Promise.race([answer, expired]);
  } finally {
    clearTimeout(timer);
    if (onAbort) signal!.removeEventListener("abort", onAbort);
  }
}

/** "1.5s", "0.25s", "10s": milliseconds as seconds with up to 3 decimals, for messages. */
function formatSeconds(ms: number): string {
  return `${Number((Math.max(0, ms) / 1000).toFixed(3))}s`;
}

/**
 * The `error` text of a round that threw: prefixed "resolve: " when it failed before an address
 * was resolved (the server counts those as resolve failures), the bare message otherwise.
 */
export function roundErrorText(resolvedIp: string, e: unknown): string {
  const msg = e instanceof Error ? e.message : String(e);
  return resolvedIp ? msg : `resolve: ${msg}`;
}
