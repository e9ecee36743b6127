/**
 * The packets of a flow trace, built byte by byte: an IPv4 header (RFC 791) in front of a UDP
 * header (RFC 768) or a TCP SYN (RFC 9293), with the transport checksum over the pseudo-header,
 * and the parsers of what comes back: the quote inside an ICMP error (RFC 792: the IP header and
 * at least the first 8 bytes of the datagram; RFC 1812 4.3.2.3 asks routers for more), a UDP
 * reply and a TCP SYN-ACK / RST.
 *
 * Paris traceroute (Augustin et al., "Avoiding traceroute anomalies with Paris traceroute", IMC
 * 2006): every probe of a trace keeps the flow's 5-tuple; probes are told apart by fields no
 * ECMP / LAG hash reads: the IP ID (UDP: the only probe-specific field a router must quote, as
 * the quote may end after the 8-byte UDP header) and the TCP sequence number (within the quoted
 * 8 bytes of a TCP header).
 */

export const IPV4_HEADER_LEN = 20;
export const UDP_HEADER_LEN = 8;
export const TCP_HEADER_LEN = 20;
export const PROTO_TCP = 6;
export const PROTO_UDP = 17;
/** TCP flags (RFC 9293 3.1). */
export const TCP_FIN = 0x01;
export const TCP_SYN = 0x02;
export const TCP_RST = 0x04;
export const TCP_ACK = 0x10;
/** The window our SYNs offer (they never become connections: our kernel resets the SYN-ACK). */
const SYN_WINDOW = 64240;

/** The Internet checksum (RFC 1071) of `parts` in order, as if concatenated (each of even length but the last). */
export function internetChecksum(...parts: Uint8Array[]): number {
  let sum = 0;
  for (const p of parts) {
    for (let i = 0; i + 1 < p.length; i += 2) sum += (p[i]! << 8) | p[i + 1]!;
    if (p.length & 1) sum += p[p.length - 1]! << 8;
  }
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

/** The IPv4 pseudo-header of a transport checksum (RFC 768, RFC 9293 3.1). */
function pseudoHeader(src: Uint8Array, dst: Uint8Array, proto: number, length: number): Uint8Array {
  const p = new Uint8Array(12);
  p.set(src, 0);
  p.set(dst, 4);
  p[9] = proto;
  p[10] = length >> 8;
  p[11] = length & 0xff;
  return p;
}

/** What one probe's IPv4 header carries. */
export interface Ipv4Fields {
  src: Uint8Array;
  dst: Uint8Array;
  ttl: number;
  /** Identification: the probe's index (never 0: the kernel replaces a 0 under IP_HDRINCL). */
  id: number;
  /** The TOS byte (DSCP << 2). */
  tos: number;
  proto: number;
}

/** Writes a 20-byte IPv4 header (DF set, checksum filled) for a packet of `total` bytes at `buf[0..20)`. */
function writeIpv4(buf: Uint8Array, f: Ipv4Fields, total: number): void {
  buf[0] = 0x45;
  buf[1] = f.tos;
  buf[2] = total >> 8;
  buf[3] = total & 0xff;
  buf[4] = (f.id >> 8) & 0xff;
  buf[5] = f.id & 0xff;
  buf[6] = 0x40; // DF: the probe is never fragmented (fragments would lose the ports)
  buf[7] = 0;
  buf[8] = f.ttl;
  buf[9] = f.proto;
  buf[10] = buf[11] = 0;
  buf.set(f.src, 12);
  buf.set(f.dst, 16);
  const c = internetChecksum(buf.subarray(0, IPV4_HEADER_LEN));
  buf[10] = c >> 8;
  buf[11] = c & 0xff;
}

/** An IPv4 + UDP packet from `sport` to `dport` carrying `payload`, checksummed (RFC 768: 0 is sent as 0xffff). */
export function udpPacket(ip: Omit<Ipv4Fields, "proto">, sport: number, dport: number, payload: Uint8Array): Uint8Array {
  const udpLen = UDP_HEADER_LEN + payload.length;
  const buf = new Uint8Array(IPV4_HEADER_LEN + udpLen);
  writeIpv4(buf, { ...ip, proto: PROTO_UDP }, buf.length);
  const u = buf.subarray(IPV4_HEADER_LEN);
  u[0] = sport >> 8;
  u[1] = sport & 0xff;
  u[2] = dport >> 8;
  u[3] = dport & 0xff;
  u[4] = udpLen >> 8;
  u[5] = udpLen & 0xff;
  u.set(payload, UDP_HEADER_LEN);
  const c = internetChecksum(pseudoHeader(ip.src, ip.dst, PROTO_UDP, udpLen), u) || 0xffff;
  u[6] = c >> 8;
  u[7] = c & 0xff;
  return buf;
}

/** An IPv4 + TCP SYN from `sport` to `dport` with sequence number `seq`, no options, checksummed. */
export function tcpSynPacket(ip: Omit<Ipv4Fields, "proto">, sport: number, dport: number, seq: number): Uint8Array {
  const buf = new Uint8Array(IPV4_HEADER_LEN + TCP_HEADER_LEN);
  writeIpv4(buf, { ...ip, proto: PROTO_TCP }, buf.length);
  const t = buf.subarray(IPV4_HEADER_LEN);
  const v = new DataView(t.buffer, t.byteOffset, t.byteLength);
  v.setUint16(0, sport);
  v.setUint16(2, dport);
  v.setUint32(4, seq >>> 0);
  t[12] = (TCP_HEADER_LEN / 4) << 4;
  t[13] = TCP_SYN;
  v.setUint16(14, SYN_WINDOW);
  v.setUint16(16, internetChecksum(pseudoHeader(ip.src, ip.dst, PROTO_TCP, TCP_HEADER_LEN), t));
  return buf;
}

/** The fields of an IPv4 packet's header and the first 8 bytes of its transport header. */
export interface Ipv4Transport {
  proto: number;
  id: number;
  src: Uint8Array;
  dst: Uint8Array;
  sport: number;
  dport: number;
  /** Bytes 4..7 of the transport header: TCP's sequence number (UDP: length and checksum). */
  word1: number;
  /** Offset of the transport header in the buffer. */
  l4: number;
}

/**
 * Parses the IPv4 header at `buf[at..end)` and the first 8 bytes after it (a quoted probe or a
 * received packet). @returns null when it is not IPv4 or too short for 8 transport bytes
 */
export function parseIpv4(buf: Uint8Array, at: number, end: number): Ipv4Transport | null {
  if (end - at < IPV4_HEADER_LEN || buf[at]! >> 4 !== 4) return null;
  const l4 = at + (buf[at]! & 0x0f) * 4;
  if (l4 < at + IPV4_HEADER_LEN || end < l4 + 8) return null;
  return {
    proto: buf[at + 9]!,
    id: (buf[at + 4]! << 8) | buf[at + 5]!,
    src: buf.subarray(at + 12, at + 16),
    dst: buf.subarray(at + 16, at + 20),
    sport: (buf[l4]! << 8) | buf[l4 + 1]!,
    dport: (buf[l4 + 2]! << 8) | buf[l4 + 3]!,
    word1: ((buf[l4 + 4]! << 24) | (buf[l4 + 5]! << 16) | (buf[l4 + 6]! << 8) | buf[l4 + 7]!) >>> 0,
    l4,
  };
}

/** Flags and acknowledgement number of a TCP header at `buf[l4..end)`, or null when shorter than 20 bytes. */
export function tcpFlagsAck(buf: Uint8Array, l4: number, end: number): { flags: number; ack: number } | null {
  if (end < l4 + TCP_HEADER_LEN) return null;
  return { flags: buf[l4 + 13]!, ack: ((buf[l4 + 8]! << 24) | (buf[l4 + 9]! << 16) | (buf[l4 + 10]! << 8) | buf[l4 + 11]!) >>> 0 };
}
