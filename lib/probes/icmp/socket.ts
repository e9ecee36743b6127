/**
 * One non-blocking ICMP socket with kernel receive timestamps: the echo engine's shared one per
 * address family (family.ts), one per distinct ttl / dont_fragment / source_ip_address setting
 * (engine_variants.ts, socket_setup.ts), and the path tracer's.
 *
 * Clocks (clock.ts): every timestamp here is CLOCK_MONOTONIC in nanoseconds on the socket's Clock,
 * so durations between them survive wall-clock steps. Send times are read immediately before
 * sendto(). Receive times come from the kernel's SO_TIMESTAMPNS control message (the packet's
 * arrival, but on CLOCK_REALTIME), translated: age = wall clock now − stamp, receive time =
 * monotonic now − age. The age is trusted only when it is plausible: not negative, and not older
 * than the last moment this socket's queue was seen empty (what is read now arrived after it),
 * plus RX_STAMP_SLACK_NS. A wall-clock step between a packet's arrival and its read fails that
 * test (its age is off by the step), and so does a stamp that is missing: the receive time is
 * then the monotonic clock right after recvmmsg(), late by no more than the packet's wait in the
 * queue (counted in `rxStampsRejected`).
 */
import {
  AF_INET, AF_INET6, EAGAIN, ENOBUFS, EPERM, ICMP6_FILTER, ICMP_FILTER, IPPROTO_ICMP, IPPROTO_ICMPV6,
  IPPROTO_IP, IPPROTO_IPV6, IPV6_RECVERR, IPV6_UNICAST_HOPS, IP_RECVERR, IP_TTL, MSG_ERRQUEUE, SO_EE_ORIGIN_ICMP, SO_EE_ORIGIN_ICMP6, SO_EE_ORIGIN_LOCAL,
  SOCK_CLOEXEC, SOCK_DGRAM, SOCK_NONBLOCK, SOCK_RAW, SOL_RAW, SOL_SOCKET, SO_RCVBUF, SO_RCVBUFFORCE, SO_SNDBUF, SO_TIMESTAMPNS,
  addressOf, errno, linkMmsg, libc, strerror,
} from "./libc.ts";
import {
  ICMP6_DEST_UNREACH, ICMP6_ECHO_REPLY, ICMP6_ECHO_REQUEST, ICMP6_TIME_EXCEEDED, ICMP_DEST_UNREACH, ICMP_ECHO_REPLY, ICMP_ECHO_REQUEST, ICMP_TIME_EXCEEDED,
} from "./packet.ts";
import { readFileSync } from "node:fs";
import { SYSTEM_CLOCK, stampToMonotonic, type Clock } from "./clock.ts";
export { RX_STAMP_SLACK_NS } from "./clock.ts";
import { SocketSetupError, applySetup, attachIdentifierFilter, unavailableReason, type SocketSetup } from "./socket_setup.ts";

import type { Datagram, EchoDirection, QueuedIcmpError, SocketKind } from "./socket_types.ts";
import { IcmpUnavailableError } from "./socket_types.ts";
export { IcmpUnavailableError, datagramSource, type Datagram, type EchoDirection, type QueuedIcmpError, type SocketKind } from "./socket_types.ts";

/** recvmmsg() errors in a row after which one drain() gives up (transient ones come one at a time). */
const MAX_CONSECUTIVE_ERRORS = 4;
/** Datagrams read per recvmmsg() call. */
const BATCH = 16;
/** Bytes per datagram slot: the largest ICMP message an IPv4/IPv6 packet can carry. */
const SLOT = 65_536;
const NAME_LEN = 32;
const CTRL_LEN = 64;
/** sizeof(struct mmsghdr) on LP64: struct msghdr (56) + msg_len (4) + padding (4). */
const MMSG = 64;

/** An open non-blocking ICMP or ICMPv6 socket. */
export class IcmpSocket {
  readonly v6: boolean;
  readonly kind: SocketKind;
  /** Echo identifier: the kernel's for ping sockets (socket "port"), random for raw sockets. */
  readonly identifier: number;
  /** Where this socket reads time; every `*Ns` value of it is monotonic ns on this clock. */
  readonly clock: Clock;
  /**
   * The unix second the socket's `*Ns` values count from: `epochSec + rxNs / 1e9` is the wall time
   * of a receive, exact if the wall clock did not step since the clock's creation (clock.ts).
   */
  get epochSec(): number {
    return this.clock.realtimeOriginSec;
  }
  /** Received packets whose kernel stamp disagreed with the monotonic clock (a wall-clock step) or was missing: timed at read instead. */
  rxStampsRejected = 0;
  /** Estimated receive buffer, bytes: the request doubled (as the kernel does), clamped by rmem_max when unprivileged; not read back. */
  readonly rcvbuf: number;
  /** ICMP errors about this socket's requests are queued for drainErrors() (IP_RECVERR / IPV6_RECVERR). */
  readonly recvErr: boolean;
  private fd: number;
  /** Monotonic ns when the receive queue was last seen empty (or the socket opened): what is read later arrived after it. */
  private emptyAtNs: number;
  /** The same for the error queue (drainErrors). */
  private errEmptyAtNs: number;
  /** BATCH receive slots and their struct mmsghdr array; pointers inside never change. */
  private readonly bufs = new Uint8Array(BATCH * SLOT);
  private readonly names = new Uint8Array(BATCH * NAME_LEN);
  private readonly ctrls = new Uint8Array(BATCH * CTRL_LEN);
  private readonly ctrlView = new DataView(this.ctrls.buffer);
  private readonly iovs = new BigUint64Array(BATCH * 2);
  private readonly mmsg = new Uint8Array(BATCH * MMSG);
  private readonly mmsgView = new DataView(this.mmsg.buffer);
  /** Slots whose namelen/controllen the kernel overwrote and that must be reset before reuse. */
  private dirty = BATCH;
  /** The one Datagram handed to drain() callbacks, refilled per datagram. */
  private readonly dgram: Datagram = { buf: this.bufs, icmpOffset: 0, end: 0, sourceBuf: this.bufs, sourceOffset: 0, rxNs: 0 };
  /** Error-queue reads (trace sockets of the ping kind): one struct msghdr and its buffers, set up on first use. */
  private errq?: { msg: Uint8Array; view: DataView; data: Uint8Array; name: Uint8Array; ctrl: Uint8Array; ctrlView: DataView; iov: BigUint64Array };

  /**
   * Opens a socket for the family: a ping socket first, a raw socket otherwise.
   * @param rcvbufBytes requested receive buffer (SO_RCVBUFFORCE when privileged)
   * @param accept raw sockets only: pass echo replies (default) or echo requests (test responders)
   * @param clock where send and receive times are read (tests inject one that steps the wall clock)
   * @param setup TTL, fragmentation, local address, IP_RECVERR (socket_setup.ts)
   * @param avoidIdentifiers raw sockets: echo identifiers already used by the caller's other raw
   *   sockets (each raw socket sees every echo reply and tells its own by identifier)
   * @throws IcmpUnavailableError naming the sysctl and capability that would allow ICMP;
   *   SocketSetupError when the kernel refuses a setting of `setup` (the socket is closed)
   */
  constructor(
    v6: boolean, rcvbufBytes = 4 << 20, prefer: SocketKind | "auto" = "auto", accept: EchoDirection = "replies", clock: Clock = SYSTEM_CLOCK,
    setup: SocketSetup = {}, avoidIdentifiers?: ReadonlySet<number>,
  ) {
    this.v6 = v6;
    this.clock = clock;
    const family = v6 ? AF_INET6 : AF_INET;
    const proto = v6 ? IPPROTO_ICMPV6 : IPPROTO_ICMP;
    let fd = -1;
    let kind: SocketKind = "ping";
    let pingErr = 0;
    if (prefer !== "raw") {
      fd = libc.socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, proto);
      if (fd < 0) pingErr = errno();
    }
    if (fd < 0 && prefer !== "ping") {
      fd = libc.socket(family, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, proto);
      kind = "raw";
      if (fd < 0) {
        const rawErr = errno();
        throw new IcmpUnavailableError(unavailableReason(v6, pingErr, rawErr));
      }
    }
    if (fd < 0) throw new IcmpUnavailableError(unavailableReason(v6, pingErr, EPERM));
    this.fd = fd;
    this.kind = kind;
    try {
      applySetup(fd, v6, setup);
    } catch (e) {
      this.close();
      throw e;
    }
    this.recvErr = setup.recvErr === true || (kind === "ping" && accept === "trace");
    this.setInt(SOL_SOCKET, SO_TIMESTAMPNS, 1);
    if (this.setInt(SOL_SOCKET, SO_RCVBUFFORCE, rcvbufBytes) !== 0) this.setInt(SOL_SOCKET, SO_RCVBUF, rcvbufBytes);
    this.setInt(SOL_SOCKET, SO_SNDBUF, 1 << 20);
    this.rcvbuf = this.getRcvbuf(rcvbufBytes);
    if (kind === "raw") {
      const types = accept === "requests" ? [v6 ? ICMP6_ECHO_REQUEST : ICMP_ECHO_REQUEST]
        : accept === "replies" ? [v6 ? ICMP6_ECHO_REPLY : ICMP_ECHO_REPLY]
        : v6 ? [ICMP6_ECHO_REPLY, ICMP6_TIME_EXCEEDED, ICMP6_DEST_UNREACH] : [ICMP_ECHO_REPLY, ICMP_TIME_EXCEEDED, ICMP_DEST_UNREACH];
      this.installFilter(types);
      let id = (Math.random() * 0xffff) | 0;
      while (avoidIdentifiers?.has(id)) id = (id + 1) & 0xffff;
      this.identifier = id;
      const e = setup.ownIdentifierOnly ? attachIdentifierFilter(fd, v6, id) : 0;
      if (e) {
        this.close();
        throw new SocketSetupError("filter", e, `SO_ATTACH_FILTER: ${strerror(e)}`);
      }
    } else {
      this.identifier = this.boundIdentifier();
      if (accept === "trace") this.setInt(v6 ? IPPROTO_IPV6 : IPPROTO_IP, v6 ? IPV6_RECVERR : IP_RECVERR, 1);
    }
    this.emptyAtNs = this.errEmptyAtNs = clock.monotonicNs();
    // Prepare the mmsghdr array once: name, iov and control pointers never change.
    linkMmsg(this.mmsgView, BATCH, this.bufs, SLOT, this.names, NAME_LEN, this.iovs, this.ctrls, CTRL_LEN);
  }

  /** Monotonic time now, ns on the socket's clock. */
  nowNs(): number {
    return this.clock.monotonicNs();
  }

  /**
   * Sends one ICMP message. @returns the send time (monotonic ns on the socket's clock, read right
   * before sendto), or a negative errno on failure (-EAGAIN / -ENOBUFS mean "retry later").
   */
  send(packet: Uint8Array, sockaddr: Uint8Array): number {
    let t = this.nowNs();
    let n = libc.sendto(this.fd, packet, packet.length, 0, sockaddr, sockaddr.length);
    if (n >= 0) return t;
    const e = errno();
    if (!this.recvErr || e === EAGAIN || e === ENOBUFS) return -e;
    // With IP_RECVERR an ICMP error about an earlier request (ours, or on a raw socket another
    // raw socket's) is also reported once as the next call's errno (sk_err), and nothing is sent;
    // the error itself waits in the queue. Send again: a real send error repeats.
    t = this.nowNs();
    n = libc.sendto(this.fd, packet, packet.length, 0, sockaddr, sockaddr.length);
    return n < 0 ? -errno() : t;
  }

  /**
   * Reads every queued datagram (until EAGAIN), BATCH per recvmmsg() call, and hands each to
   * `onDatagram`. The datagram's buffers are reused by the next read: copy anything kept.
   * @returns datagrams read
   */
  drain(onDatagram: (d: Datagram) => void): number {
    let count = 0;
    let errors = 0;
    const mv = this.mmsgView;
    for (;;) {
      for (let i = 0; i < this.dirty; i++) {
        mv.setUint32(i * MMSG + 8, NAME_LEN, true); // msg_namelen
        mv.setUint32(i * MMSG + 40, CTRL_LEN, true); // msg_controllen (size_t, high half stays 0)
      }
      const n = libc.recvmmsg(this.fd, this.mmsg, BATCH, 0, null);
      if (n <= 0) {
        this.dirty = 0;
        const err = n < 0 ? errno() : 0;
        if (err !== 0 && err !== EAGAIN) {
          // A pending ICMP error (sk_err) is reported once and then the queue reads on; a
          // persistent error (a closed descriptor) must not spin: give up after a few in a row.
          if (++errors < MAX_CONSECUTIVE_ERRORS) continue;
          return count;
        }
        this.emptyAtNs = this.clock.monotonicNs();
        return count;
      }
      this.dirty = n;
      // Wall clock first, then monotonic: a stamp's age (wall) can then not exceed its true age
      // measured up to the monotonic reading, and both bound what the batch's stamps may say.
      const realNow = this.clock.realtimeNs();
      const monoNow = this.clock.monotonicNs();
      for (let i = 0; i < n; i++) {
        count++;
        onDatagram(this.datagram(i, mv.getUint32(i * MMSG + 56, true), realNow, monoNow));
      }
      if (n < BATCH) {
        this.emptyAtNs = monoNow;
        return count;
      }
    }
  }

  /**
   * The monotonic receive time of a packet whose kernel stamp reads `stampNs` (wall clock, ns
   * relative to the clock's realtimeOriginSec; NaN: no stamp), read when the wall clock said
   * `realNow` and the monotonic one `monoNow`, from a queue last seen empty at `emptyAt` (see
   * module docs).
   */
  private receiveTime(stampNs: number, realNow: number, monoNow: number, emptyAt: number): number {
    const t = stampToMonotonic(stampNs, realNow, monoNow, emptyAt);
    if (!Number.isNaN(t)) return t;
    this.rxStampsRejected++;
    return monoNow;
  }

  /** Decodes receive slot `i` holding a datagram of `len` bytes, read when the clocks said realNow / monoNow. */
  private datagram(i: number, len: number, realNow: number, monoNow: number): Datagram {
    const mv = this.mmsgView;
    const cv = this.ctrlView;
    let stampNs = NaN;
    const base = i * CTRL_LEN;
    const ctrlLen = mv.getUint32(i * MMSG + 40, true);
    for (let off = 0; off + 16 <= ctrlLen; ) {
      const clen = cv.getUint32(base + off, true);
      if (clen < 16) break;
      if (cv.getInt32(base + off + 8, true) === SOL_SOCKET && cv.getInt32(base + off + 12, true) === SO_TIMESTAMPNS) {
        const sec = cv.getUint32(base + off + 16, true) + cv.getInt32(base + off + 20, true) * 4294967296;
        stampNs = (sec - this.clock.realtimeOriginSec) * 1e9 + cv.getUint32(base + off + 24, true);
      }
      off += (clen + 7) & ~7;
    }
    const d = this.dgram;
    const start = i * SLOT;
    d.rxNs = this.receiveTime(stampNs, realNow, monoNow, this.emptyAtNs);
    d.end = start + len;
    if (this.v6) {
      d.icmpOffset = start;
      d.sourceBuf = this.names;
      d.sourceOffset = i * NAME_LEN + 8;
    } else if (this.kind === "raw") {
      d.icmpOffset = start + (this.bufs[start]! & 0x0f) * 4;
      d.sourceBuf = this.bufs;
      d.sourceOffset = start + 12;
    } else {
      d.icmpOffset = start;
      d.sourceBuf = this.names;
      d.sourceOffset = i * NAME_LEN + 4;
    }
    return d;
  }

  /** Sets the TTL (IPv4) or unicast hop limit (IPv6) of the requests sent next. @returns 0 or a negative errno */
  setHopLimit(ttl: number): number {
    return this.setInt(this.v6 ? IPPROTO_IPV6 : IPPROTO_IP, this.v6 ? IPV6_UNICAST_HOPS : IP_TTL, ttl) === 0 ? 0 : -errno();
  }

  /**
   * Reads every queued error (MSG_ERRQUEUE) of a socket with IP_RECVERR (`recvErr`: a ping socket
   * opened for "trace", or a SocketSetup asking for it) and hands each ICMP one, and with
   * `withLocal` each local one, to `onError`; the views are reused by the next read. Raw trace
   * sockets get ICMP errors as datagrams (drain) instead. @returns errors read
   */
  drainErrors(onError: (e: QueuedIcmpError) => void, withLocal = false): number {
    if (!this.recvErr) return 0;
    const q = (this.errq ??= this.errorQueueBuffers());
    let count = 0;
    for (;;) {
      q.view.setUint32(8, q.name.length, true);
      q.view.setBigUint64(40, BigInt(q.ctrl.length), true);
      const n = Number(libc.recvmsg(this.fd, q.msg, MSG_ERRQUEUE));
      if (n < 0) {
        this.errEmptyAtNs = this.clock.monotonicNs();
        return count;
      }
      const realNow = this.clock.realtimeNs();
      const monoNow = this.clock.monotonicNs();
      let stampNs = NaN;
      let ee: QueuedIcmpError | undefined;
      const ctrlLen = Number(q.view.getBigUint64(40, true));
      for (let off = 0; off + 16 <= ctrlLen; ) {
        const clen = q.ctrlView.getUint32(off, true);
        if (clen < 16) break;
        const level = q.ctrlView.getInt32(off + 8, true), type = q.ctrlView.getInt32(off + 12, true);
        if (level === SOL_SOCKET && type === SO_TIMESTAMPNS) {
          const sec = q.ctrlView.getUint32(off + 16, true) + q.ctrlView.getInt32(off + 20, true) * 4294967296;
          stampNs = (sec - this.clock.realtimeOriginSec) * 1e9 + q.ctrlView.getUint32(off + 24, true);
        } else if ((level === IPPROTO_IP && type === IP_RECVERR) || (level === IPPROTO_IPV6 && type === IPV6_RECVERR)) {
          // struct sock_extended_err (16 bytes), then the offender's sockaddr (SO_EE_OFFENDER).
          const origin = q.ctrl[off + 20]!;
          const icmp = origin === SO_EE_ORIGIN_ICMP || origin === SO_EE_ORIGIN_ICMP6;
          if (icmp || (withLocal && origin === SO_EE_ORIGIN_LOCAL)) {
            const sa = off + 32;
            ee = {
              origin: icmp ? "icmp" : "local", errno: q.ctrlView.getUint32(off + 16, true), info: q.ctrlView.getUint32(off + 24, true),
              type: q.ctrl[off + 21]!, code: q.ctrl[off + 22]!,
              offender: this.v6 ? q.ctrl.subarray(sa + 8, sa + 24) : q.ctrl.subarray(sa + 4, sa + 8),
              destination: this.v6 ? q.name.subarray(8, 24) : q.name.subarray(4, 8),
              request: q.data.subarray(0, Math.min(n, q.data.length)), rxNs: 0,
            };
          }
        }
        off += (clen + 7) & ~7;
      }
      count++;
      if (ee) {
        ee.rxNs = this.receiveTime(stampNs, realNow, monoNow, this.errEmptyAtNs);
        onError(ee);
      }
    }
  }

  private errorQueueBuffers() {
    const data = new Uint8Array(2048), name = new Uint8Array(NAME_LEN), ctrl = new Uint8Array(256);
    // Views first: asking a small typed array for its .buffer moves its bytes, which would leave a
    // pointer taken before pointing at the old copy.
    const ctrlView = new DataView(ctrl.buffer);
    const msg = new Uint8Array(56); // struct msghdr
    const view = new DataView(msg.buffer);
    const iov = new BigUint64Array([BigInt(addressOf(data)), BigInt(data.length)]);
    view.setBigUint64(0, BigInt(addressOf(name)), true);
    view.setBigUint64(16, BigInt(addressOf(iov)), true);
    view.setBigUint64(24, 1n, true);
    view.setBigUint64(32, BigInt(addressOf(ctrl)), true);
    return { msg, view, data, name, ctrl, ctrlView, iov };
  }

  /** Closes the socket; further calls fail. */
  close(): void {
    if (this.fd >= 0) libc.close(this.fd);
    this.fd = -1;
  }

  private setInt(level: number, opt: number, value: number): number {
    return libc.setsockopt(this.fd, level, opt, new Int32Array([value]), 4);
  }

  private getRcvbuf(requested: number): number {
    // getsockopt is not bound; SO_RCVBUF doubles the request, clamped by net.core.rmem_max unless forced.
    try {
      const max = Number(readFileSync("/proc/sys/net/core/rmem_max", "utf8"));
      return process.getuid?.() === 0 ? requested * 2 : Math.min(requested, max) * 2;
    } catch {
      return requested * 2;
    }
  }

  /** Raw sockets see every ICMP message of the host: let the kernel pass only the types wanted. */
  private installFilter(types: number[]): void {
    if (this.v6) {
      const f = new Uint32Array(8).fill(0xffffffff); // ICMP6_FILTER: a set bit blocks the type
      for (const t of types) f[t >> 5]! &= ~(1 << (t & 31));
      libc.setsockopt(this.fd, IPPROTO_ICMPV6, ICMP6_FILTER, f, 32);
    } else {
      let blocked = 0xffffffff; // ICMP_FILTER: a set bit blocks the type
      for (const t of types) blocked &= ~(1 << t);
      libc.setsockopt(this.fd, SOL_RAW, ICMP_FILTER, new Uint32Array([blocked >>> 0]), 4);
    }
  }

  private boundIdentifier(): number {
    const sa = new Uint8Array(32);
    const len = new Uint32Array([32]);
    libc.getsockname(this.fd, sa, len);
    return (sa[2]! << 8) | sa[3]!; // the kernel rewrites the echo id to the ping socket's "port"
  }
}
