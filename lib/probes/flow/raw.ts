/**
 * The flow tracer's send-and-receive socket: one raw IPv4 socket of the flow's protocol
 * (IPPROTO_UDP / IPPROTO_TCP) per trace, with IP_HDRINCL (the tracer writes the IP header: TTL
 * and IP ID per probe, raw(7)), connected to the destination so that the kernel hands it only
 * packets from that address (a raw socket otherwise gets a copy of every UDP / TCP packet of the
 * host, the agent's own mesh replies included).
 *
 * Receive times are the kernel's SO_TIMESTAMPNS stamps moved onto CLOCK_MONOTONIC (clock.ts) the
 * way IcmpSocket does it: a stamp's age by the wall clock is trusted when it is not negative and
 * not older than the moment the queue was last seen empty; otherwise the read time is used. Send
 * times are read right before sendto(). Needs CAP_NET_RAW.
 */
import {
  AF_INET, EACCES, EPERM, IPPROTO_IP, IP_HDRINCL, SOCK_CLOEXEC, SOCK_DGRAM, SOCK_NONBLOCK, SOCK_RAW, SOL_SOCKET, SO_TIMESTAMPNS,
  addressOf, encodeSockaddr, errno, libc, strerror,
} from "../icmp/libc.ts";
import { SYSTEM_CLOCK, stampToMonotonic, type Clock } from "../icmp/clock.ts";

/** Bytes read per packet: an IPv4 header, a TCP header with options or a UDP probe's header and more. */
const RECV_LEN = 2048;

/** No raw socket: the process lacks CAP_NET_RAW (or the kernel refuses). */
export class FlowTraceUnavailableError extends Error {
  override name = "FlowTraceUnavailableError";
}

/** Opens a raw IPv4 socket of `proto`. @throws FlowTraceUnavailableError naming the capability */
function openRaw(proto: number): number {
  const fd = libc.socket(AF_INET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, proto);
  if (fd >= 0) return fd;
  const e = errno();
  throw new FlowTraceUnavailableError(
    e === EPERM || e === EACCES
      ? `flow traces need raw sockets: run the agent as root or give it CAP_NET_RAW (setcap cap_net_raw+ep ./agent) (${strerror(e)})`
      : `raw socket: ${strerror(e)}`,
  );
}

/** Whether raw sockets can be opened here: undefined, or why not. */
export function rawSocketProblem(proto: number): string | undefined {
  try {
    libc.close(openRaw(proto));
    return undefined;
  } catch (e) {
    return (e as Error).message;
  }
}

/**
 * The local IPv4 address the kernel would send from to `ip`:`port` (a connected UDP socket's
 * getsockname; nothing is sent). It goes into the probes' IP header and checksums.
 * @throws Error when there is no route
 */
export function sourceAddressFor(ip: string, port: number): Uint8Array {
  const fd = libc.socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw new Error(`udp socket: ${strerror(errno())}`);
  try {
    const sa = encodeSockaddr(ip);
    sa[2] = port >> 8;
    sa[3] = port & 0xff;
    if (libc.connect(fd, sa, sa.length) !== 0) throw new Error(`no route to ${ip}: ${strerror(errno())}`);
    const name = new Uint8Array(16);
    const len = new Uint32Array([16]);
    if (libc.getsockname(fd, name, len) !== 0) throw new Error(`getsockname: ${strerror(errno())}`);
    return name.slice(4, 8);
  } finally {
    libc.close(fd);
  }
}

/** One raw socket of a flow trace. */
export class RawFlowSocket {
  private fd: number;
  private readonly sockaddr: Uint8Array;
  private emptyAtNs: number;
  private readonly data = new Uint8Array(RECV_LEN);
  private readonly ctrl = new Uint8Array(128);
  private readonly ctrlView: DataView;
  private readonly msg = new Uint8Array(56); // struct msghdr
  private readonly msgView: DataView;
  private readonly iov: BigUint64Array;

  /**
   * @param proto IPPROTO_UDP or IPPROTO_TCP
   * @param ip the destination (IPv4 literal)
   * @throws FlowTraceUnavailableError without CAP_NET_RAW; Error when a socket option is refused
   */
  constructor(proto: number, ip: string, readonly clock: Clock = SYSTEM_CLOCK) {
    this.fd = openRaw(proto);
    this.sockaddr = encodeSockaddr(ip);
    const one = new Int32Array([1]);
    if (libc.setsockopt(this.fd, IPPROTO_IP, IP_HDRINCL, one, 4) !== 0 || libc.setsockopt(this.fd, SOL_SOCKET, SO_TIMESTAMPNS, one, 4) !== 0
      || libc.connect(this.fd, this.sockaddr, this.sockaddr.length) !== 0) {
      const e = errno();
      this.close();
      throw new Error(`raw socket setup: ${strerror(e)}`);
    }
    // Views first (a small typed array's bytes move when its .buffer is first asked for), then
    // pointers through addressOf (libc.ts).
    this.ctrlView = new DataView(this.ctrl.buffer);
    this.msgView = new DataView(this.msg.buffer);
    this.iov = new BigUint64Array([BigInt(addressOf(this.data)), BigInt(RECV_LEN)]);
    this.msgView.setBigUint64(16, BigInt(addressOf(this.iov)), true);
    this.msgView.setBigUint64(24, 1n, true);
    this.msgView.setBigUint64(32, BigInt(addressOf(this.ctrl)), true);
    this.emptyAtNs = clock.monotonicNs();
  }

  /**
   * Sends one whole IP packet. @returns the send time (monotonic ns, read right before sendto) or
   * a negative errno. An ICMP error about an earlier probe of this connected socket (the
   * destination's Port Unreachable) is reported once as the next call's errno, nothing sent: the
   * packet is then sent once more, and a real error repeats.
   */
  send(packet: Uint8Array): number {
    for (let attempt = 0; ; attempt++) {
      const t = this.clock.monotonicNs();
      if (Number(libc.sendto(this.fd, packet, packet.length, 0, this.sockaddr, this.sockaddr.length)) >= 0) return t;
      if (attempt === 1) return -errno();
    }
  }

  /**
   * Reads every queued packet and hands each (the whole IPv4 packet in `buf[0..len)`, reused by
   * the next read) with its monotonic receive time to `onPacket`. @returns packets read
   */
  drain(onPacket: (buf: Uint8Array, len: number, rxNs: number) => void): number {
    let count = 0;
    for (;;) {
      this.msgView.setBigUint64(40, BigInt(this.ctrl.length), true);
      const n = Number(libc.recvmsg(this.fd, this.msg, 0));
      const realNow = this.clock.realtimeNs();
      const monoNow = this.clock.monotonicNs();
      if (n < 0) {
        this.emptyAtNs = monoNow;
        return count;
      }
      let stampNs = NaN;
      const ctrlLen = Number(this.msgView.getBigUint64(40, true));
      for (let off = 0; off + 16 <= ctrlLen; ) {
        const clen = this.ctrlView.getUint32(off, true);
        if (clen < 16) break;
        if (this.ctrlView.getInt32(off + 8, true) === SOL_SOCKET && this.ctrlView.getInt32(off + 12, true) === SO_TIMESTAMPNS) {
          const sec = this.ctrlView.getUint32(off + 16, true) + this.ctrlView.getInt32(off + 20, true) * 4294967296;
          stampNs = (sec - this.clock.realtimeOriginSec) * 1e9 + this.ctrlView.getUint32(off + 24, true);
        }
        off += (clen + 7) & ~7;
      }
      const stamped = stampToMonotonic(stampNs, realNow, monoNow, this.emptyAtNs);
      const rxNs = Number.isNaN(stamped) ? monoNow : stamped;
      count++;
      onPacket(this.data, Math.min(n, RECV_LEN), rxNs);
    }
  }

  /** Closes the socket; further sends fail, drains read nothing. */
  close(): void {
    if (this.fd >= 0) libc.close(this.fd);
    this.fd = -1;
  }
}
