/**
 * ICMP echo messages: RFC 792 (IPv4, type 8 request / 0 reply) and RFC 4443 (ICMPv6, type 128
 * request / 129 reply). Header: type(1) code(1) checksum(2) identifier(2) sequence(2), then data.
 */

export const ICMP_ECHO_REQUEST = 8;
export const ICMP_ECHO_REPLY = 0;
export const ICMP6_ECHO_REQUEST = 128;
export const ICMP6_ECHO_REPLY = 129;
/** ICMP errors a path trace reads: Time Exceeded (RFC 792 type 11, RFC 4443 type 3) and Destination Unreachable (3 / 1). */
export const ICMP_TIME_EXCEEDED = 11;
export const ICMP_DEST_UNREACH = 3;
export const ICMP6_TIME_EXCEEDED = 3;
export const ICMP6_DEST_UNREACH = 1;
/** Destination Unreachable code 4 "fragmentation needed and DF set" (RFC 792; RFC 1191 puts the next-hop MTU in it). */
export const ICMP_FRAG_NEEDED = 4;
/** ICMPv6 Packet Too Big (RFC 4443 type 2, with the MTU of the next link). */
export const ICMP6_PACKET_TOO_BIG = 2;
/** Length of the ICMP echo header in bytes. */
export const ECHO_HEADER_LEN = 8;
/** Bytes of the engine token at the start of every payload (tells our replies from others'). */
export const TOKEN_LEN = 8;

/** RFC 1071 Internet checksum over `buf[start, end)`; returns the 16-bit one's complement sum. */
export function internetChecksum(buf: Uint8Array, start = 0, end = buf.length): number {
  let sum = 0;
  let i = start;
  for (; i + 1 < end; i += 2) sum += (buf[i]! << 8) | buf[i + 1]!;
  if (i < end) sum += buf[i]! << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

/**
 * Writes an echo request into `out` (length 8 + payloadSize): header, the 8-byte engine token,
 * then a fixed pattern derived from the sequence so that a corrupted reply can be detected.
 * The checksum is filled for IPv4; for ICMPv6 the kernel computes it (pseudo-header).
 */
export function writeEchoRequest(out: Uint8Array, v6: boolean, identifier: number, sequence: number, token: Uint8Array): void {
  out[0] = v6 ? ICMP6_ECHO_REQUEST : ICMP_ECHO_REQUEST;
  out[1] = 0;
  out[2] = 0;
  out[3] = 0;
  out[4] = identifier >> 8;
  out[5] = identifier & 0xff;
  out[6] = sequence >> 8;
  out[7] = sequence & 0xff;
  out.set(token.subarray(0, Math.min(TOKEN_LEN, out.length - ECHO_HEADER_LEN)), ECHO_HEADER_LEN);
  for (let i = ECHO_HEADER_LEN + TOKEN_LEN; i < out.length; i++) out[i] = (i + sequence) & 0xff;
  if (!v6) {
    const c = internetChecksum(out);
    out[2] = c >> 8;
    out[3] = c & 0xff;
  }
}

/** A parsed echo reply. `ok` is false when the payload does not match what was sent (corruption). */
export interface EchoReply {
  identifier: number;
  sequence: number;
  /** Payload length after the 8-byte header. */
  payloadSize: number;
  ok: boolean;
}

/**
 * Parses an echo reply at `buf[off, end)`. Returns null for any other ICMP message or one not
 * carrying `token`. Checks the IPv4 checksum and the whole payload pattern (`ok`). With `out`,
 * fills and returns it instead of a new object (the engine's hot path).
 */
export function parseEchoReply(buf: Uint8Array, off: number, end: number, v6: boolean, token: Uint8Array, out?: EchoReply): EchoReply | null {
  if (end - off < ECHO_HEADER_LEN + TOKEN_LEN) return null;
  if (buf[off] !== (v6 ? ICMP6_ECHO_REPLY : ICMP_ECHO_REPLY) || buf[off + 1] !== 0) return null;
  for (let i = 0; i < TOKEN_LEN; i++) if (buf[off + ECHO_HEADER_LEN + i] !== token[i]) return null;
  const sequence = (buf[off + 6]! << 8) | buf[off + 7]!;
  let ok = v6 || internetChecksum(buf, off, end) === 0;
  for (let i = ECHO_HEADER_LEN + TOKEN_LEN; ok && i < end - off; i++) if (buf[off + i] !== ((i + sequence) & 0xff)) ok = false;
  const r = out ?? { identifier: 0, sequence: 0, payloadSize: 0, ok: false };
  r.identifier = (buf[off + 4]! << 8) | buf[off + 5]!;
  r.sequence = sequence;
  r.payloadSize = end - off - ECHO_HEADER_LEN;
  r.ok = ok;
  return r;
}
