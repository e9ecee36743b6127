/**
 * Thin libc bindings (bun:ffi) for ICMP sockets, plus sockaddr encoding. Linux x86_64/arm64 ABI
 * (LP64: pointers and size_t are 8 bytes; struct msghdr is 56 bytes, struct mmsghdr 64).
 *
 * Why FFI: `net-ping` rests on the NAN addon `raw-socket`, which does not build or load in Bun
 * (see README, design notes), and Node/Bun have no ICMP socket API.
 */
import { dlopen, FFIType, ptr, read, type Pointer } from "bun:ffi";

export const AF_INET = 2;
export const AF_INET6 = 10;
export const SOCK_DGRAM = 2;
export const SOCK_RAW = 3;
export const SOCK_NONBLOCK = 0o4000;
export const SOCK_CLOEXEC = 0o2000000;
export const IPPROTO_ICMP = 1;
export const IPPROTO_ICMPV6 = 58;
export const SOL_SOCKET = 1;
export const SOL_RAW = 255;
export const SO_RCVBUF = 8;
export const SO_SNDBUF = 7;
export const SO_RCVBUFFORCE = 33;
export const SO_TIMESTAMPNS = 35;
/** Classic BPF socket filter (socket(7), struct sock_fprog). */
export const SO_ATTACH_FILTER = 26;
/** struct icmp_filter for IPv4 raw sockets (linux/icmp.h). */
export const ICMP_FILTER = 1;
/** struct icmp6_filter for ICMPv6 raw sockets (netinet/icmp6.h). */
export const ICMP6_FILTER = 1;
/** IP-level options for path traces: TTL / hop limit per request, ICMP errors on ping sockets (ip(7), ipv6(7)). */
export const IPPROTO_IP = 0;
export const IPPROTO_IPV6 = 41;
export const IP_TTL = 2;
export const IP_RECVERR = 11;
export const IPV6_UNICAST_HOPS = 16;
export const IPV6_RECVERR = 25;
export const MSG_ERRQUEUE = 0x2000;
/** Fragmentation control (ip(7) IP_MTU_DISCOVER, ipv6(7) IPV6_DONTFRAG): blackbox's dont_fragment. */
export const IP_MTU_DISCOVER = 10;
/** Never set DF: fragment locally to the path MTU, let routers fragment further. */
export const IP_PMTUDISC_DONT = 0;
/** Always set DF: a datagram larger than the known path MTU fails with EMSGSIZE. */
export const IP_PMTUDISC_DO = 2;
export const IPV6_DONTFRAG = 62;
/** sock_extended_err.ee_origin of an ICMP / ICMPv6 error (linux/errqueue.h). */
export const SO_EE_ORIGIN_LOCAL = 1;
export const SO_EE_ORIGIN_ICMP = 2;
export const SO_EE_ORIGIN_ICMP6 = 3;
export const CLOCK_REALTIME = 0;
export const CLOCK_MONOTONIC = 1;
export const EAGAIN = 11;
export const ENOBUFS = 105;
export const EPERM = 1;
export const EACCES = 13;
export const EMSGSIZE = 90;
export const EADDRNOTAVAIL = 99;
/** Flow sockets (udp kind, tcp flows, flow traces): UDP/TCP, ports, TOS, linger, TCP_INFO (ip(7), socket(7), tcp(7)). */
export const SOCK_STREAM = 1;
export const IPPROTO_TCP = 6;
export const IPPROTO_UDP = 17;
export const SO_REUSEADDR = 2;
export const SO_REUSEPORT = 15;
export const SO_ERROR = 4;
export const SO_LINGER = 13;
export const IP_TOS = 1;
export const IP_RECVTOS = 13;
export const IPV6_TCLASS = 67;
export const IPV6_RECVTCLASS = 66;
export const IPV6_V6ONLY = 26;
/** The destination address of a received datagram, and the source of a sent one (ip(7) IP_PKTINFO, ipv6(7) IPV6_PKTINFO). */
export const IP_PKTINFO = 8;
export const IPV6_RECVPKTINFO = 49;
export const IPV6_PKTINFO = 50;
export const IP_HDRINCL = 3;
export const TCP_INFO = 11;
export const EINPROGRESS = 115;
export const EADDRINUSE = 98;
export const ECONNREFUSED = 111;
export const ETIMEDOUT = 110;
export const ECONNRESET = 104;

const lib = dlopen(`libc.so.6`, {
  socket: { args: [FFIType.i32, FFIType.i32, FFIType.i32], returns: FFIType.i32 },
  setsockopt: { args: [FFIType.i32, FFIType.i32, FFIType.i32, FFIType.ptr, FFIType.u32], returns: FFIType.i32 },
  bind: { args: [FFIType.i32, FFIType.ptr, FFIType.u32], returns: FFIType.i32 },
  getsockname: { args: [FFIType.i32, FFIType.ptr, FFIType.ptr], returns: FFIType.i32 },
  getsockopt: { args: [FFIType.i32, FFIType.i32, FFIType.i32, FFIType.ptr, FFIType.ptr], returns: FFIType.i32 },
  connect: { args: [FFIType.i32, FFIType.ptr, FFIType.u32], returns: FFIType.i32 },
  sendmsg: { args: [FFIType.i32, FFIType.ptr, FFIType.i32], returns: FFIType.i64_fast },
  poll: { args: [FFIType.ptr, FFIType.u64, FFIType.i32], returns: FFIType.i32 },
  sendto: { args: [FFIType.i32, FFIType.ptr, FFIType.u64, FFIType.i32, FFIType.ptr, FFIType.u32], returns: FFIType.i64_fast },
  recvmsg: { args: [FFIType.i32, FFIType.ptr, FFIType.i32], returns: FFIType.i64_fast },
  recvmmsg: { args: [FFIType.i32, FFIType.ptr, FFIType.u32, FFIType.i32, FFIType.ptr], returns: FFIType.i32 },
  clock_gettime: { args: [FFIType.i32, FFIType.ptr], returns: FFIType.i32 },
  close: { args: [FFIType.i32], returns: FFIType.i32 },
  strerror: { args: [FFIType.i32], returns: FFIType.cstring },
  __errno_location: { args: [], returns: FFIType.ptr },
});

/** The raw libc symbols. */
export const libc = lib.symbols;

/** errno of the calling thread, read right after a failed call. */
export function errno(): number {
  return read.i32(libc.__errno_location() as Pointer, 0);
}

/** "EACCES (Permission denied)"-style text for an errno value. */
export function strerror(code: number): string {
  return `${String(libc.strerror(code))} (errno ${code})`;
}

/**
 * Numeric address of a typed array's memory, for pointer fields inside C structs that the kernel
 * writes through later (msghdr name, iov, control).
 *
 * A small typed array (JSC "fast" array, up to ~1,000 elements) keeps its bytes in the GC heap
 * until something asks for its ArrayBuffer (`.buffer`, `subarray()`, a DataView): then the bytes
 * move to a new allocation and the old one is freed. A pointer taken before that points at freed
 * memory, and the kernel's next recvmsg() writes there: in 0.4.0 `subarray()` on the error-queue
 * name buffer did this, and the agent died in Bun's allocator a few traces later. So the buffer is
 * materialised here first; its address is then stable for its lifetime (tests/icmp_ffi.test.ts).
 */
export function addressOf(buf: Uint8Array | BigUint64Array | Int32Array, byteOffset = 0): number {
  void buf.buffer;
  return ptr(buf, byteOffset);
}

/**
 * Fills an array of `struct mmsghdr` (64 bytes each on LP64) for recvmmsg(): slot i receives into
 * `bufs[i * slot ..]` through the iovec `iovs[2i..2i+1]`, its source address into
 * `names[i * nameLen ..]` and its control messages into `ctrls[i * ctrlLen ..]`. The pointers are
 * set once (addressOf); msg_namelen / msg_controllen must be reset before each call.
 */
export function linkMmsg(mmsg: DataView, count: number, bufs: Uint8Array, slot: number, names: Uint8Array, nameLen: number, iovs: BigUint64Array, ctrls: Uint8Array, ctrlLen: number): void {
  for (let i = 0; i < count; i++) {
    iovs[2 * i] = BigInt(addressOf(bufs, i * slot));
    iovs[2 * i + 1] = BigInt(slot);
    const m = i * 64;
    mmsg.setBigUint64(m, BigInt(addressOf(names, i * nameLen)), true);
    mmsg.setBigUint64(m + 16, BigInt(addressOf(iovs, i * 16)), true);
    mmsg.setBigUint64(m + 24, 1n, true);
    mmsg.setBigUint64(m + 32, BigInt(addressOf(ctrls, i * ctrlLen)), true);
  }
}

/**
 * Encodes an IPv4 or IPv6 literal as `struct sockaddr_in` (16 bytes) or `sockaddr_in6` (28 bytes).
 * @throws Error for a string that is not an IP literal
 */
export function encodeSockaddr(ip: string): Uint8Array {
  return sockaddrOf(ip.includes(":") ? ipv6Bytes(ip) : ipv4Bytes(ip));
}

/** `struct sockaddr_in` (16 bytes) for 4 address bytes, `sockaddr_in6` (28 bytes) for 16; port 0. */
export function sockaddrOf(addr: Uint8Array): Uint8Array {
  const v6 = addr.length === 16;
  const sa = new Uint8Array(v6 ? 28 : 16);
  new DataView(sa.buffer).setUint16(0, v6 ? AF_INET6 : AF_INET, true);
  sa.set(addr, v6 ? 8 : 4);
  return sa;
}

/** Dotted quad to 4 bytes. @throws Error when malformed */
export function ipv4Bytes(ip: string): Uint8Array {
  const parts = ip.split(".").map(Number);
  if (parts.length !== 4 || parts.some((p) => !Number.isInteger(p) || p < 0 || p > 255)) throw new Error(`bad IPv4 address ${ip}`);
  return Uint8Array.from(parts);
}

/** RFC 4291 text form (with `::` and an optional embedded IPv4 tail) to 16 bytes. @throws Error */
export function ipv6Bytes(ip: string): Uint8Array {
  let text = ip.replace(/%.*$/, "");
  const out = new Uint8Array(16);
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (v4) {
    const b = ipv4Bytes(v4[1]!);
    text = text.slice(0, -v4[1]!.length) + `${((b[0]! << 8) | b[1]!).toString(16)}:${((b[2]! << 8) | b[3]!).toString(16)}`;
  }
  const halves = text.split("::");
  if (halves.length > 2) throw new Error(`bad IPv6 address ${ip}`);
  const head = halves[0] ? halves[0].split(":") : [];
  const tail = halves.length === 2 && halves[1] ? halves[1].split(":") : [];
  const groups = halves.length === 2 ? [...head, ...Array(8 - head.length - tail.length).fill("0"), ...tail] : head;
  if (groups.length !== 8) throw new Error(`bad IPv6 address ${ip}`);
  groups.forEach((g, i) => {
    const v = parseInt(g, 16);
    if (!/^[0-9a-fA-F]{1,4}$/.test(g)) throw new Error(`bad IPv6 address ${ip}`);
    out[i * 2] = v >> 8;
    out[i * 2 + 1] = v & 0xff;
  });
  return out;
}
