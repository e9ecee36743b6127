/**
 * One non-blocking UDP socket bound to a port, with kernel receive timestamps: the udp responder's
 * (-agent.udp.listen.port) and one per flow source port of the udp prober.
 *
 * It listens on the wildcard address: `[::]` with IPV6_V6ONLY off (one socket for IPv4 and IPv6;
 * IPv4 peers appear as IPv4 and are sent to through their IPv4-mapped address), or `0.0.0.0` when
 * the host has no IPv6.
 *
 * Clocks follow the ICMP sockets (lib/probes/icmp/socket.ts, clock.ts): send times are
 * CLOCK_MONOTONIC read right before sendto(); receive times come from the kernel's SO_TIMESTAMPNS
 * stamp (CLOCK_REALTIME at the packet's arrival), translated to the monotonic clock through its age
 * and trusted only when that age is plausible (not negative, not older than the moment the queue
 * was last seen empty plus RX_STAMP_SLACK_NS); otherwise the read time is used and counted in
 * `rxStampsRejected`. The raw stamp is also handed out as unix nanoseconds (the responder's receive
 * time in a reply).
 */
import {
  AF_INET, AF_INET6, EADDRINUSE, EAGAIN, EACCES, IPPROTO_IP, IPPROTO_IPV6, IPV6_TCLASS, IPV6_V6ONLY, IP_TOS,
  SOCK_CLOEXEC, SOCK_DGRAM, SOCK_NONBLOCK, SOL_SOCKET, SO_RCVBUF, SO_SNDBUF, SO_TIMESTAMPNS,
  CLOCK_REALTIME, IPV6_PKTINFO, IPV6_RECVPKTINFO, IP_PKTINFO, addressOf, errno, linkMmsg, ipv4Bytes, ipv6Bytes, libc, strerror,
} from "../icmp/libc.ts";
import { SYSTEM_CLOCK, stampToMonotonic, type Clock } from "../icmp/clock.ts";
import { MAX_PROBE_LEN } from "./packet.ts";

/** Datagrams read per recvmmsg() call. */
const BATCH = 16;
/** Bytes per receive slot: the largest probe, plus one so a larger datagram shows as oversize. */
const SLOT = MAX_PROBE_LEN + 1;
const NAME_LEN = 28;
/** Control bytes per datagram: SO_TIMESTAMPNS (32) and IP_PKTINFO (32) or IPV6_PKTINFO (40). */
const CTRL_LEN = 128;
/** sizeof(struct mmsghdr) on LP64. */
const MMSG = 64;
/** msghdr.msg_flags bit: the datagram was longer than its slot. */
const MSG_TRUNC = 0x20;
const IPV4_MAPPED = Uint8Array.of(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff);

/** One received datagram; its buffers are reused by the next read (copy what is kept). */
export interface UdpDatagram {
  /** The receive slot: bytes [offset, offset + len). */
  buf: Uint8Array;
  offset: number;
  /** Bytes received; SLOT (more than MAX_PROBE_LEN) when the datagram was larger. */
  len: number;
  /** Receive time, monotonic ns on the socket's clock (kernel stamp when plausible). */
  rxNs: number;
  /** The kernel's receive stamp as unix ns (the wall clock now when there was none). */
  rxUnixNs: bigint;
  /** The sender's address in text (IPv4-mapped IPv6 shown as IPv4) and port. */
  sourceIp: string;
  sourcePort: number;
  /** The sender's struct sockaddr as received, to answer it with reply(). */
  sourceName: Uint8Array;
  /**
   * The address the datagram was sent to (IP_PKTINFO / IPV6_PKTINFO): 4 or 16 bytes at
   * `localOffset` of the socket's control buffer `localBuf`; localLen 0 when the kernel said nothing.
   */
  localBuf: Uint8Array;
  localOffset: number;
  localLen: number;
}

/** CLOCK_REALTIME now as unix nanoseconds. */
const tsBuf = new Uint32Array(4);
export function realtimeUnixNs(): bigint {
  libc.clock_gettime(CLOCK_REALTIME, tsBuf);
  return BigInt(tsBuf[0]! + tsBuf[1]! * 4294967296) * 1_000_000_000n + BigInt(tsBuf[2]!);
}

/** An open UDP socket bound to one port on the wildcard address. */
export class UdpSocket {
  /** Whether it is an IPv6 (dual-stack) socket; false: IPv4 only. */
  readonly v6: boolean;
  /** The bound port (the kernel's choice when 0 was asked for). */
  readonly port: number;
  readonly clock: Clock;
  /** Datagrams whose kernel stamp was missing or implausible (timed at read instead). */
  rxStampsRejected = 0;
  private fd: number;
  private emptyAtNs: number;
  private tos = 0;
  private readonly bufs = new Uint8Array(BATCH * SLOT);
  private readonly names = new Uint8Array(BATCH * NAME_LEN);
  private readonly ctrls = new Uint8Array(BATCH * CTRL_LEN);
  private readonly ctrlView = new DataView(this.ctrls.buffer);
  private readonly iovs = new BigUint64Array(BATCH * 2);
  private readonly mmsg = new Uint8Array(BATCH * MMSG);
  private readonly mmsgView = new DataView(this.mmsg.buffer);
  private readonly nameView = new DataView(this.names.buffer);
  private readonly dgram: UdpDatagram = { buf: this.bufs, offset: 0, len: 0, rxNs: 0, rxUnixNs: 0n, sourceIp: "", sourcePort: 0, sourceName: this.names, localBuf: this.ctrls, localOffset: 0, localLen: 0 };
  /** reply()'s struct msghdr, iovec and control message, pointers fixed at construction. */
  private readonly sendMsg = new Uint8Array(56);
  private readonly sendMsgView = new DataView(this.sendMsg.buffer);
  private readonly sendIov = new BigUint64Array(2);
  private readonly sendCtrl = new Uint8Array(40);
  private readonly sendCtrlView = new DataView(this.sendCtrl.buffer);

  /**
   * Opens and binds the socket.
   * @param port 1..65535, or 0 for a port of the kernel's choice
   * @param opts.ipv4Only bind 0.0.0.0 even when IPv6 is available (tests)
   * @throws Error naming the port and the reason (EADDRINUSE: "port 6010/udp is in use ...")
   */
  constructor(port: number, opts: { clock?: Clock; ipv4Only?: boolean; rcvbufBytes?: number } = {}) {
    this.clock = opts.clock ?? SYSTEM_CLOCK;
    if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`udp port ${port}: ports are 0..65535`);
    let v6 = !opts.ipv4Only;
    let fd = v6 ? libc.socket(AF_INET6, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0) : -1;
    if (fd >= 0 && libc.setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, new Int32Array([0]), 4) !== 0) {
      libc.close(fd);
      fd = -1;
    }
    if (fd < 0) {
      v6 = false;
      fd = libc.socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    }
    if (fd < 0) throw new Error(`udp port ${port}: socket(): ${strerror(errno())}`);
    const sa = new Uint8Array(v6 ? 28 : 16);
    new DataView(sa.buffer).setUint16(0, v6 ? AF_INET6 : AF_INET, true);
    new DataView(sa.buffer).setUint16(2, port);
    if (libc.bind(fd, sa, sa.length) !== 0) {
      const e = errno();
      libc.close(fd);
      const why = e === EADDRINUSE ? "is in use by another process (or another socket of this one)" : e === EACCES ? "needs privileges (a port below 1024)" : `cannot be bound: ${strerror(e)}`;
      throw new Error(`udp port ${port} ${why}`);
    }
    this.fd = fd;
    this.v6 = v6;
    this.setInt(SOL_SOCKET, SO_TIMESTAMPNS, 1);
    // Where each datagram was sent to, so a reply leaves from that address (a multi-homed host
    // would otherwise answer from its route's address, which the prober does not know).
    this.setInt(IPPROTO_IP, IP_PKTINFO, 1);
    if (v6) this.setInt(IPPROTO_IPV6, IPV6_RECVPKTINFO, 1);
    this.sendMsgView.setBigUint64(16, BigInt(addressOf(this.sendIov)), true);
    this.sendMsgView.setBigUint64(24, 1n, true);
    this.sendMsgView.setBigUint64(32, BigInt(addressOf(this.sendCtrl)), true);
    this.setInt(SOL_SOCKET, SO_RCVBUF, opts.rcvbufBytes ?? 1 << 20);
    this.setInt(SOL_SOCKET, SO_SNDBUF, 1 << 20);
    const got = new Uint8Array(28);
    libc.getsockname(fd, got, new Uint32Array([28]));
    this.port = (got[2]! << 8) | got[3]!;
    this.emptyAtNs = this.clock.monotonicNs();
    linkMmsg(this.mmsgView, BATCH, this.bufs, SLOT, this.names, NAME_LEN, this.iovs, this.ctrls, CTRL_LEN);
  }

  /** The file descriptor (-1 once closed), for poll(). */
  get descriptor(): number {
    return this.fd;
  }

  /** Whether the socket is still open. */
  get open(): boolean {
    return this.fd >= 0;
  }

  /**
   * The struct sockaddr to send to `ip`:`port` from this socket (IPv4 through its IPv4-mapped
   * form on a dual-stack socket).
   * @throws Error for an IPv6 address on an IPv4-only socket, or a string that is not an IP
   */
  sockaddr(ip: string, port: number): Uint8Array {
    const v6addr = ip.includes(":");
    if (v6addr && !this.v6) throw new Error(`cannot reach ${ip}: IPv6 is not available on this host`);
    const sa = new Uint8Array(this.v6 ? 28 : 16);
    const v = new DataView(sa.buffer);
    v.setUint16(0, this.v6 ? AF_INET6 : AF_INET, true);
    v.setUint16(2, port);
    if (!this.v6) sa.set(ipv4Bytes(ip), 4);
    else if (v6addr) sa.set(ipv6Bytes(ip), 8);
    else {
      sa.set(IPV4_MAPPED, 8);
      sa.set(ipv4Bytes(ip), 20);
    }
    return sa;
  }

  /**
   * Sets the DSCP (RFC 2474, 0..63) of the datagrams sent next: IP_TOS for IPv4 and IPV6_TCLASS
   * for IPv6 (both on a dual-stack socket), DSCP << 2 (ECN bits 0). A no-op when unchanged.
   * @returns 0, or a negative errno
   */
  setDscp(dscp: number): number {
    const tos = (dscp & 0x3f) << 2;
    if (tos === this.tos) return 0;
    let rc = this.setInt(IPPROTO_IP, IP_TOS, tos);
    if (rc === 0 && this.v6) rc = this.setInt(IPPROTO_IPV6, IPV6_TCLASS, tos);
    if (rc !== 0) return -errno();
    this.tos = tos;
    return 0;
  }

  /** Monotonic time now, ns on the socket's clock. */
  nowNs(): number {
    return this.clock.monotonicNs();
  }

  /**
   * Sends `buf[0..len)` to `sockaddr`. @returns the send time (monotonic ns, read right before
   * sendto), or a negative errno (-EAGAIN / -ENOBUFS: retry later)
   */
  send(buf: Uint8Array, len: number, sockaddr: Uint8Array): number {
    if (this.fd < 0) return -9; // EBADF
    const t = this.clock.monotonicNs();
    const n = libc.sendto(this.fd, buf, len, 0, sockaddr, sockaddr.length);
    return n < 0 ? -errno() : t;
  }

  /**
   * Answers datagram `d` with `buf[0..len)` (`buf` must be the socket's receive slot of `d` or
   * another buffer that stays alive): to its sender, from the address it was sent to
   * (IP_PKTINFO / IPV6_PKTINFO), so the answer's source is what the sender addressed. `lastly`
   * runs right before sendmsg(), after the message is built: the responder reads its send time
   * and tags the reply there, so as little as possible lies between that time and the send.
   * @returns the send time (monotonic ns), or a negative errno
   */
  reply(buf: Uint8Array, len: number, d: UdpDatagram, lastly?: () => void): number {
    if (this.fd < 0) return -9; // EBADF
    const mv = this.sendMsgView;
    const cv = this.sendCtrlView;
    // Views into buffers whose addresses were fixed at construction (addressOf in libc.ts).
    mv.setBigUint64(0, BigInt(addressOf(d.sourceName)), true);
    mv.setUint32(8, d.sourceName.length, true);
    this.sendIov[0] = BigInt(addressOf(buf));
    this.sendIov[1] = BigInt(len);
    let ctrlLen = 0;
    this.sendCtrl.fill(0);
    if (d.localLen === 4) {
      // struct in_pktinfo { int ipi_ifindex; struct in_addr ipi_spec_dst; struct in_addr ipi_addr; }: the source goes in ipi_spec_dst.
      cv.setBigUint64(0, 28n, true);
      cv.setInt32(8, IPPROTO_IP, true);
      cv.setInt32(12, IP_PKTINFO, true);
      this.sendCtrl.set(d.localBuf.subarray(d.localOffset, d.localOffset + 4), 20);
      ctrlLen = 32;
    } else if (d.localLen === 16) {
      // struct in6_pktinfo { struct in6_addr ipi6_addr; int ipi6_ifindex; }
      cv.setBigUint64(0, 36n, true);
      cv.setInt32(8, IPPROTO_IPV6, true);
      cv.setInt32(12, IPV6_PKTINFO, true);
      this.sendCtrl.set(d.localBuf.subarray(d.localOffset, d.localOffset + 16), 16);
      ctrlLen = 40;
    }
    mv.setBigUint64(40, BigInt(ctrlLen), true);
    if (ctrlLen === 0) mv.setBigUint64(32, 0n, true);
    else mv.setBigUint64(32, BigInt(addressOf(this.sendCtrl)), true);
    lastly?.();
    const t = this.clock.monotonicNs();
    const n = Number(libc.sendmsg(this.fd, this.sendMsg, 0));
    return n < 0 ? -errno() : t;
  }

  /**
   * Reads every queued datagram (until EAGAIN), BATCH per recvmmsg() call, handing each to
   * `onDatagram` (the object and its buffers are reused). Never throws for socket errors.
   * @returns datagrams read
   */
  drain(onDatagram: (d: UdpDatagram) => void): number {
    if (this.fd < 0) return 0;
    let count = 0;
    let errors = 0;
    const mv = this.mmsgView;
    for (;;) {
      for (let i = 0; i < BATCH; i++) {
        mv.setUint32(i * MMSG + 8, NAME_LEN, true);
        mv.setBigUint64(i * MMSG + 40, BigInt(CTRL_LEN), true);
      }
      const n = libc.recvmmsg(this.fd, this.mmsg, BATCH, 0, null);
      if (n <= 0) {
        const err = n < 0 ? errno() : 0;
        // ICMP port unreachable for an earlier send is reported once as an error: read on.
        if (err !== 0 && err !== EAGAIN && ++errors < 4) continue;
        this.emptyAtNs = this.clock.monotonicNs();
        return count;
      }
      const realNow = this.clock.realtimeNs();
      const monoNow = this.clock.monotonicNs();
      for (let i = 0; i < n; i++) {
        count++;
        onDatagram(this.datagram(i, realNow, monoNow));
      }
      if (n < BATCH) {
        this.emptyAtNs = monoNow;
        return count;
      }
    }
  }

  private datagram(i: number, realNow: number, monoNow: number): UdpDatagram {
    const mv = this.mmsgView;
    const cv = this.ctrlView;
    const m = i * MMSG;
    const base = i * CTRL_LEN;
    const ctrlLen = Number(mv.getBigUint64(m + 40, true));
    let sec = NaN;
    let nsec = 0;
    const d = this.dgram;
    d.localLen = 0;
    for (let off = 0; off + 16 <= ctrlLen && off + 16 <= CTRL_LEN; ) {
      const clen = cv.getUint32(base + off, true);
      if (clen < 16) break;
      const level = cv.getInt32(base + off + 8, true), type = cv.getInt32(base + off + 12, true);
      if (level === SOL_SOCKET && type === SO_TIMESTAMPNS) {
        sec = cv.getUint32(base + off + 16, true) + cv.getInt32(base + off + 20, true) * 4294967296;
        nsec = cv.getUint32(base + off + 24, true);
      } else if (level === IPPROTO_IP && type === IP_PKTINFO && clen >= 28) {
        d.localOffset = base + off + 24; // in_pktinfo.ipi_addr: the header's destination
        d.localLen = 4;
      } else if (level === IPPROTO_IPV6 && type === IPV6_PKTINFO && clen >= 36) {
        d.localOffset = base + off + 16; // in6_pktinfo.ipi6_addr
        d.localLen = 16;
      }
      off += (clen + 7) & ~7;
    }
    d.offset = i * SLOT;
    d.len = mv.getUint32(m + 48, true) & MSG_TRUNC ? SLOT : mv.getUint32(m + 56, true);
    if (Number.isNaN(sec)) {
      this.rxStampsRejected++;
      d.rxNs = monoNow;
      d.rxUnixNs = realtimeUnixNs();
    } else {
      const stampNs = (sec - this.clock.realtimeOriginSec) * 1e9 + nsec;
      d.rxNs = stampToMonotonic(stampNs, realNow, monoNow, this.emptyAtNs);
      if (Number.isNaN(d.rxNs)) {
        this.rxStampsRejected++;
        d.rxNs = monoNow;
      }
      d.rxUnixNs = BigInt(sec) * 1_000_000_000n + BigInt(nsec);
    }
    const nb = i * NAME_LEN;
    const nv = this.nameView;
    const family = nv.getUint16(nb, true);
    d.sourcePort = nv.getUint16(nb + 2);
    if (family === AF_INET6) {
      d.sourceName = this.names.subarray(nb, nb + 28);
      const a = this.names.subarray(nb + 8, nb + 24);
      d.sourceIp = ipText(a);
    } else {
      d.sourceName = this.names.subarray(nb, nb + 16);
      d.sourceIp = `${this.names[nb + 4]}.${this.names[nb + 5]}.${this.names[nb + 6]}.${this.names[nb + 7]}`;
    }
    return d;
  }

  /** Closes the socket; later sends fail with -EBADF and drains read nothing. */
  close(): void {
    if (this.fd >= 0) libc.close(this.fd);
    this.fd = -1;
  }

  private setInt(level: number, opt: number, value: number): number {
    return libc.setsockopt(this.fd, level, opt, new Int32Array([value]), 4);
  }
}

/** Text of 16 IPv6 address bytes as replies' sources are shown: IPv4-mapped as dotted IPv4, else RFC 5952. */
export function ipText(a: Uint8Array): string {
  for (let k = 0; k < 12; k++) if (a[k] !== IPV4_MAPPED[k]) return ipv6Text(a);
  return `${a[12]}.${a[13]}.${a[14]}.${a[15]}`;
}

/** RFC 5952 text of 16 address bytes (lower case, the longest run of zero groups compressed). */
export function ipv6Text(a: Uint8Array): string {
  const g = Array.from({ length: 8 }, (_, k) => (a[2 * k]! << 8) | a[2 * k + 1]!);
  let best = -1, bestLen = 1;
  for (let k = 0; k < 8; ) {
    if (g[k] !== 0) { k++; continue; }
    let j = k;
    while (j < 8 && g[j] === 0) j++;
    if (j - k > bestLen) { best = k; bestLen = j - k; }
    k = j;
  }
  const hex = g.map((x) => x.toString(16));
  if (best < 0) return hex.join(":");
  return `${hex.slice(0, best).join(":")}::${hex.slice(best + bestLen).join(":")}`;
}
