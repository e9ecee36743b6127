/** The types an ICMP socket (socket.ts) hands to its users: received datagrams, queued ICMP errors, socket kinds. */

/** "ping": SOCK_DGRAM ICMP (unprivileged, net.ipv4.ping_group_range); "raw": SOCK_RAW (CAP_NET_RAW). */
export type SocketKind = "ping" | "raw";

/**
 * What a socket is for: "replies" (a pinger: a raw socket passes echo replies only), "requests"
 * (a test responder), or "trace" (a path tracer: echo replies plus Time Exceeded and Destination
 * Unreachable; a ping socket gets those through IP_RECVERR, read with drainErrors()).
 */
export type EchoDirection = "replies" | "requests" | "trace";

/**
 * An ICMP error about one of our requests, read from the error queue of a socket with IP_RECVERR
 * (a ping socket opened for "trace", or any socket whose SocketSetup asks for it); with
 * drainErrors(_, true) also a local send error (origin "local": EMSGSIZE with the path MTU).
 */
export interface QueuedIcmpError {
  /** "icmp": an ICMP / ICMPv6 message from `offender`; "local": the host's own stack refused a send. */
  origin: "icmp" | "local";
  /** The errno the kernel maps the error to (sock_extended_err.ee_errno: EHOSTUNREACH, EMSGSIZE, ...). */
  errno: number;
  /** ICMP type and code of the error (IPv4 or ICMPv6 numbering, by the socket's family); 0 for local errors. */
  type: number;
  code: number;
  /** sock_extended_err.ee_info: the MTU for "fragmentation needed", "packet too big" and a local EMSGSIZE; else 0. */
  info: number;
  /** The router that sent it (SO_EE_OFFENDER): 4 or 16 address bytes. */
  offender: Uint8Array;
  /** Destination of the request it is about: 4 or 16 address bytes. */
  destination: Uint8Array;
  /** The start of our request as sent: ICMP header (type, code, checksum, identifier, sequence) on. */
  request: Uint8Array;
  /** Receive time, monotonic ns on the socket's clock (see module docs). */
  rxNs: number;
}

/** Why no ICMP socket could be opened, with the exact sysctl / capability to fix it. */
export class IcmpUnavailableError extends Error {
  override name = "IcmpUnavailableError";
}

/**
 * One received datagram as handed to the engine. `buf` is the socket's whole receive buffer and
 * the offsets are absolute in it; the object itself is reused for the next datagram (at 40,000
 * replies a second, a view and an object per reply were most of the agent's garbage): read what
 * you need inside the callback.
 */
export interface Datagram {
  buf: Uint8Array;
  /** Start of the ICMP header in `buf` (after the IPv4 header on raw IPv4 sockets). */
  icmpOffset: number;
  /** End of the datagram in `buf`. */
  end: number;
  /** The source address: 4 (IPv4) or 16 (IPv6) bytes at `sourceOffset` in `sourceBuf`. */
  sourceBuf: Uint8Array;
  sourceOffset: number;
  /** Receive time, monotonic ns on the socket's clock: the kernel's stamp when plausible (see module docs). */
  rxNs: number;
}

/** A copy-free view of a datagram's source address bytes (allocates: for low-volume callers). */
export function datagramSource(d: Datagram, v6: boolean): Uint8Array {
  return d.sourceBuf.subarray(d.sourceOffset, d.sourceOffset + (v6 ? 16 : 4));
}
