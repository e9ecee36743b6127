/**
 * The wire format of the udp kind's probes and replies (docs/probes.md "UDP"), in the spirit of
 * NetNORAD's pinger/responder: the reply carries the responder's kernel receive time and its send
 * time, so the prober can subtract the time the probe spent inside the responder (its dwell).
 *
 * Every field is big-endian (network order). HEADER_LEN bytes, then zero padding up to the probe's
 * payload_size; a reply is exactly as long as its request (never an amplifier):
 *
 *   off len  field
 *     0   4  magic "PMU1" (0x504d5531)
 *     4   1  type: 1 request, 2 reply
 *     5   1  dscp: the DSCP (RFC 2474, 0..63) the prober sent with; the reply is sent with it
 *     6   2  flags: bit 0 = a path-trace probe (lib/probes/flow/), the rest 0
 *     8   8  nonce: the prober's random id (per prober process), so that it knows its own replies
 *    16   4  sequence: per flow, counts up across rounds (wraps at 2^32)
 *    20   4  reflector count (since 0.7), in a reply: how many requests of this flow (source IP,
 *            source port, nonce) the responder has received, this one included, 1..2^32-1
 *            (after 2^32-1 comes 1); 0 in a request and from a responder that does not count
 *            (0.6, which wrote "reserved, 0" here)
 *    24   8  responder receive time, unix ns (kernel SO_TIMESTAMPNS; 0 in a request)
 *    32   8  responder send time, unix ns (read right before sendto; 0 in a request)
 *    40  16  tag: the first 16 bytes of HMAC-SHA256(mesh key, bytes 0..39)
 *
 * The mesh key (HeartbeatResponse.mesh_key) is what makes the responder safe to expose: it
 * answers only requests whose tag verifies, and the prober accepts only replies whose tag does
 * (a spoofed reply cannot fake an RTT). The tag covers the timestamps and the count of a reply.
 *
 * The reflector count is RFC 5357 (TWAMP)'s Session-Reflector sequence number: between two replies
 * of one flow, the sequences say how many requests were sent and the counts how many arrived, so
 * the prober tells the loss of the requests from the loss of the replies (oneway.ts).
 */
import { createHmac, timingSafeEqual } from "node:crypto";

/** "PMU1". */
export const UDP_MAGIC = 0x504d5531;
export const TYPE_REQUEST = 1;
export const TYPE_REPLY = 2;
/** flags bit 0: a trace probe (the prober of rounds ignores its reply). */
export const FLAG_TRACE = 1;
/** Bytes of the header, the smallest valid probe and the smallest payload_size. */
export const HEADER_LEN = 56;
/** The largest probe a responder answers (a jumbo frame's UDP payload). */
export const MAX_PROBE_LEN = 9000;
/** Bytes of the tag (HMAC-SHA256 truncated, as RFC 2104 section 5 allows). */
export const TAG_LEN = 16;
const TAGGED_LEN = 40;

/** The header's fields. Times are unix nanoseconds as bigint (0n in a request). */
export interface ProbeHeader {
  type: number;
  dscp: number;
  flags: number;
  nonce: bigint;
  sequence: number;
  /** Reflector count of a reply (1..2^32-1); 0 in a request or when the responder does not count. */
  count: number;
  rxNs: bigint;
  txNs: bigint;
}

/** The largest reflector count; the one after it is 1 (0 means "not counted"). */
export const MAX_COUNT = 0xffffffff;

/** The tag of bytes 0..39 of `buf` under `key`. */
function tag(buf: Uint8Array, key: Uint8Array): Buffer {
  return createHmac("sha256", key).update(buf.subarray(0, TAGGED_LEN)).digest().subarray(0, TAG_LEN);
}

/**
 * Writes a request header (and zero padding) into `buf`, whose length is the probe's size
 * (>= HEADER_LEN), and tags it with `key`.
 * @throws RangeError when `buf` is shorter than HEADER_LEN
 */
export function writeRequest(buf: Uint8Array, key: Uint8Array, h: { dscp: number; flags: number; nonce: bigint; sequence: number }): void {
  if (buf.length < HEADER_LEN) throw new RangeError(`a probe is at least ${HEADER_LEN} bytes, not ${buf.length}`);
  buf.fill(0);
  const v = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  v.setUint32(0, UDP_MAGIC);
  buf[4] = TYPE_REQUEST;
  buf[5] = h.dscp & 0x3f;
  v.setUint16(6, h.flags);
  v.setBigUint64(8, BigInt.asUintN(64, h.nonce));
  v.setUint32(16, h.sequence >>> 0);
  buf.set(tag(buf, key), TAGGED_LEN);
}

/**
 * Turns the verified request in `buf[0..len)` into its reply in place: type, the reflector count,
 * the two times, a new tag under `key`. The padding is left as received; the length does not change.
 * @param count the reflector count (1..MAX_COUNT), or 0 (the default) for a reply that does not count
 */
export function toReply(buf: Uint8Array, key: Uint8Array, rxNs: bigint, txNs: bigint, count = 0): void {
  const v = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  buf[4] = TYPE_REPLY;
  v.setUint32(20, count >>> 0);
  v.setBigUint64(24, rxNs);
  v.setBigUint64(32, txNs);
  buf.set(tag(buf, key), TAGGED_LEN);
}

/** Cheap checks before any HMAC: length and magic. Hostile input is mostly dropped here. */
export function looksLikeProbe(buf: Uint8Array, len: number): boolean {
  return len >= HEADER_LEN && len <= MAX_PROBE_LEN && buf[0] === 0x50 && buf[1] === 0x4d && buf[2] === 0x55 && buf[3] === 0x31;
}

/**
 * Parses and verifies a probe or reply in `buf[0..len)`.
 * @param keys the keys to try (the current mesh key first, then the previous one)
 * @returns the header and the index of the key that verified it, or null when the length, magic,
 *   type or tag is wrong
 */
export function parseProbe(buf: Uint8Array, len: number, keys: readonly Uint8Array[]): { header: ProbeHeader; keyIndex: number } | null {
  if (!looksLikeProbe(buf, len)) return null;
  const type = buf[4]!;
  if (type !== TYPE_REQUEST && type !== TYPE_REPLY) return null;
  const got = buf.subarray(TAGGED_LEN, TAGGED_LEN + TAG_LEN);
  const keyIndex = keys.findIndex((k) => k.length > 0 && timingSafeEqual(tag(buf, k), got));
  if (keyIndex < 0) return null;
  const v = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  return {
    keyIndex,
    header: { type, dscp: buf[5]! & 0x3f, flags: v.getUint16(6), nonce: v.getBigUint64(8), sequence: v.getUint32(16), count: v.getUint32(20), rxNs: v.getBigUint64(24), txNs: v.getBigUint64(32) },
  };
}
