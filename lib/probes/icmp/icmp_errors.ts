/**
 * The `error` text of an echo round whose request came back as an ICMP error or was refused by the
 * host's own stack, written once here (docs/kinds/icmp.md "What you see"). Numbering: RFC 792 /
 * RFC 1191 (IPv4), RFC 4443 (ICMPv6).
 */
import { EMSGSIZE, strerror } from "./libc.ts";
import { ICMP6_DEST_UNREACH, ICMP6_PACKET_TOO_BIG, ICMP6_TIME_EXCEEDED, ICMP_DEST_UNREACH, ICMP_FRAG_NEEDED, ICMP_TIME_EXCEEDED } from "./packet.ts";
import type { QueuedIcmpError } from "./socket.ts";

/** Bytes of the IP packet carrying an echo request with `payloadSize` data bytes (IPv4 header without options: 20; IPv6: 40; ICMP header: 8). */
export function packetBytes(v6: boolean, payloadSize: number): number {
  return (v6 ? 40 : 20) + 8 + payloadSize;
}

/** What a round knows about itself, for the messages. */
export interface RequestFacts {
  v6: boolean;
  /** The destination, as given to the engine. */
  ip: string;
  payloadSize: number;
  /** The module's ttl (0 or absent: the system default). */
  ttl?: number;
  dontFragment?: boolean;
}

const V4_UNREACH: Record<number, string> = {
  0: "network unreachable", 1: "host unreachable", 2: "protocol unreachable", 3: "port unreachable", 5: "source route failed",
  6: "destination network unknown", 7: "destination host unknown", 9: "network administratively prohibited", 10: "host administratively prohibited",
  13: "communication administratively prohibited",
};
const V6_UNREACH: Record<number, string> = {
  0: "no route to destination", 1: "communication administratively prohibited", 2: "beyond scope of source address", 3: "address unreachable",
  4: "port unreachable", 5: "source address failed ingress/egress policy", 6: "reject route to destination",
};

/**
 * The text of an ICMP error about one of a round's requests:
 *
 *   time exceeded from 10.0.0.1 (ttl 1)                                       (IPv6: hop limit)
 *   fragmentation needed from 10.0.0.1: next-hop MTU 1280, the request is 1428 bytes with dont_fragment
 *   packet too big from fd00::1: next-hop MTU 1280, the request is 1448 bytes with dont_fragment
 *   destination unreachable from 10.0.0.1 (host unreachable)
 *   ICMP type 12 code 0 from 10.0.0.1
 */
export function icmpErrorText(e: QueuedIcmpError, r: RequestFacts): string {
  const from = ipText(e.offender);
  const size = packetBytes(r.v6, r.payloadSize);
  const df = r.dontFragment ? " with dont_fragment" : "";
  if (e.type === (r.v6 ? ICMP6_TIME_EXCEEDED : ICMP_TIME_EXCEEDED)) return `time exceeded from ${from} (${r.v6 ? "hop limit" : "ttl"} ${r.ttl || "default"})`;
  if (!r.v6 && e.type === ICMP_DEST_UNREACH && e.code === ICMP_FRAG_NEEDED) return `fragmentation needed from ${from}: next-hop MTU ${e.info}, the request is ${size} bytes${df}`;
  if (r.v6 && e.type === ICMP6_PACKET_TOO_BIG) return `packet too big from ${from}: next-hop MTU ${e.info}, the request is ${size} bytes${df}`;
  if (e.type === (r.v6 ? ICMP6_DEST_UNREACH : ICMP_DEST_UNREACH)) {
    return `destination unreachable from ${from} (${(r.v6 ? V6_UNREACH : V4_UNREACH)[e.code] ?? `code ${e.code}`})`;
  }
  return `ICMP${r.v6 ? "v6" : ""} type ${e.type} code ${e.code} from ${from}`;
}

/**
 * The text of a send the host refused. EMSGSIZE on a dont_fragment socket means the request does
 * not fit the path MTU the host knows (its link's, or one a router reported earlier):
 *
 *   dont_fragment: the 1428-byte request does not fit the path MTU 1280 to 10.0.2.2 (sendto: Message too long (errno 90))
 *
 * `mtu` is the path MTU the kernel reported with the error (0: unknown; then it is left out).
 * Any other errno: "sendto: <strerror>".
 */
export function sendErrorText(errno: number, r: RequestFacts, mtu: number): string {
  const why = `sendto: ${strerror(errno)}`;
  if (errno !== EMSGSIZE || !r.dontFragment) return why;
  const size = packetBytes(r.v6, r.payloadSize);
  return mtu > 0 ? `dont_fragment: the ${size}-byte request does not fit the path MTU ${mtu} to ${r.ip} (${why})` : `dont_fragment: the ${size}-byte request is larger than the path MTU to ${r.ip} (${why})`;
}

/** Text form of 4 or 16 address bytes (IPv6 compressed as RFC 5952). */
export function ipText(b: Uint8Array): string {
  if (b.length === 4) return `${b[0]}.${b[1]}.${b[2]}.${b[3]}`;
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((b[i]! << 8) | b[i + 1]!);
  // Longest run of ≥ 2 zero groups becomes "::".
  let best = -1, bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) { i++; continue; }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) (best = i), (bestLen = j - i);
    i = j;
  }
  const hex = (g: number[]) => g.map((x) => x.toString(16)).join(":");
  return best < 0 ? hex(groups) : `${hex(groups.slice(0, best))}::${hex(groups.slice(best + bestLen))}`;
}
