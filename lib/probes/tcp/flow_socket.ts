/**
 * The TCP connect probe's sockets (lib/probes/tcp/flows.ts): one non-blocking TCP socket per flow,
 * bound to the flow's source port, connected without waiting, timed by the kernel and closed with
 * a reset. Linux only, through bun:ffi (lib/probes/icmp/libc.ts; node:net cannot bind a connecting
 * socket with SO_REUSEADDR, read TCP_INFO or close with a RST).
 *
 * Timing comes from TCP_INFO (tcp(7), struct tcp_info in linux/tcp.h), not from when the poll loop
 * noticed the connection: the first RTT sample of a connection is the kernel's SYN -> SYN-ACK time
 * (tcp_ack_update_rtt on the SYN-ACK, µs resolution, tcpi_rtt), and tcpi_total_retrans counts the
 * SYNs the kernel had to send again. tests/tcp_flows.test.ts checks both claims on real packets.
 */
import {
  AF_INET, AF_INET6, EINPROGRESS, IPPROTO_IPV6, IPPROTO_TCP, IPV6_V6ONLY, SOCK_CLOEXEC, SOCK_NONBLOCK, SOCK_STREAM, SOL_SOCKET,
  SO_ERROR, SO_LINGER, SO_REUSEADDR, TCP_INFO, encodeSockaddr, errno, libc, strerror,
} from "../icmp/libc.ts";
import { readFileSync } from "node:fs";

/** poll(2) event bits (asm-generic/poll.h). */
const POLLOUT = 0x4;
const POLLERR = 0x8;
const POLLHUP = 0x10;
/** struct pollfd: int fd, short events, short revents. */
const POLLFD = 8;
/** The kernel's TCP_ESTABLISHED and TCP_CLOSE_WAIT (tcpi_state; include/net/tcp_states.h). */
const TCP_ESTABLISHED = 1;
const TCP_CLOSE_WAIT = 8;

/**
 * Byte offsets in struct tcp_info (linux/tcp.h, unchanged since 2.6; the struct only grows at its
 * end): eight u8 fields, then u32s from offset 8: rto 8, ato 12, snd_mss 16, rcv_mss 20, unacked
 * 24, sacked 28, lost 32, retrans 36, fackets 40, four last_* 44..56, pmtu 60, rcv_ssthresh 64,
 * rtt 68, rttvar 72, snd_ssthresh 76, snd_cwnd 80, advmss 84, reordering 88, rcv_rtt 92,
 * rcv_space 96, total_retrans 100.
 */
export const TCPI_STATE = 0;
export const TCPI_RTT = 68;
export const TCPI_TOTAL_RETRANS = 100;
/** Bytes of struct tcp_info read: up to tcpi_total_retrans. */
const TCP_INFO_LEN = 104;

/** A socket call that failed: which call, and errno. */
export class FlowSocketError extends Error {
  constructor(readonly call: string, readonly errno: number) {
    super(`${call}: ${strerror(errno)}`);
  }
}

/**
 * `struct sockaddr_in` / `sockaddr_in6` for `ip` (an IP literal; an IPv6 zone `%eth0` or `%3`
 * becomes sin6_scope_id) and `port` (host order).
 * @throws Error for a malformed address or an unknown zone
 */
export function sockaddrWithPort(ip: string, port: number): Uint8Array {
  const sa = encodeSockaddr(ip);
  new DataView(sa.buffer).setUint16(2, port, false);
  const zone = /%(.+)$/.exec(ip)?.[1];
  if (zone && sa.length === 28) new DataView(sa.buffer).setUint32(24, zoneIndex(zone), true);
  return sa;
}

/** An IPv6 zone as an interface index: a number, or an interface name read from /sys/class/net. */
function zoneIndex(zone: string): number {
  if (/^\d+$/.test(zone)) return Number(zone);
  if (!/^[\w.-]{1,15}$/.test(zone)) throw new Error(`bad IPv6 zone ${zone}`);
  try {
    return Number(readFileSync(`/sys/class/net/${zone}/ifindex`, "utf8").trim());
  } catch {
    throw new Error(`no interface ${zone} (IPv6 zone)`);
  }
}

const one = new Int32Array([1]);

/** setsockopt with an int value. @throws FlowSocketError */
function setInt(fd: number, level: number, name: number, value: Int32Array, what: string): void {
  if (libc.setsockopt(fd, level, name, value, 4) !== 0) throw new FlowSocketError(`setsockopt ${what}`, errno());
}

/**
 * Opens a non-blocking TCP socket bound to `sourceIp` (the family's wildcard when undefined) and
 * `sourcePort` with SO_REUSEADDR (a port still held by this agent's previous rounds to other
 * targets can be bound again; one held by a listener or by a socket without SO_REUSEADDR cannot:
 * EADDRINUSE), and starts connecting to `dest` (sockaddrWithPort).
 * @returns the fd, and whether the connection was established already (connect() returned 0)
 * @throws FlowSocketError naming the failed call (the socket is closed then)
 */
export function startConnect(dest: Uint8Array, sourceIp: string | undefined, sourcePort: number): { fd: number; established: boolean } {
  const v6 = dest.length === 28;
  const fd = libc.socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP);
  if (fd < 0) throw new FlowSocketError("socket", errno());
  try {
    setInt(fd, SOL_SOCKET, SO_REUSEADDR, one, "SO_REUSEADDR");
    // An IPv6 socket on [::]:port would also hold the IPv4 port: keep the families apart.
    if (v6) setInt(fd, IPPROTO_IPV6, IPV6_V6ONLY, one, "IPV6_V6ONLY");
    const local = sockaddrWithPort(sourceIp ?? (v6 ? "::" : "0.0.0.0"), sourcePort);
    if (libc.bind(fd, local, local.length) !== 0) throw new FlowSocketError("bind", errno());
    if (libc.connect(fd, dest, dest.length) === 0) return { fd, established: true };
    const e = errno();
    if (e !== EINPROGRESS) throw new FlowSocketError("connect", e);
    return { fd, established: false };
  } catch (e) {
    libc.close(fd);
    throw e;
  }
}

/**
 * Which of `fds` (connecting sockets) have an outcome now: poll(2) with a zero timeout, POLLOUT
 * (connected or failed) or POLLERR / POLLHUP.
 * @returns a flag per fd, in order
 */
export function settled(fds: readonly number[]): boolean[] {
  if (fds.length === 0) return [];
  const buf = new Uint8Array(fds.length * POLLFD);
  const v = new DataView(buf.buffer);
  fds.forEach((fd, i) => {
    v.setInt32(i * POLLFD, fd, true);
    v.setInt16(i * POLLFD + 4, POLLOUT, true);
  });
  const n = libc.poll(buf, fds.length, 0);
  if (n <= 0) return fds.map(() => false);
  return fds.map((_, i) => (v.getInt16(i * POLLFD + 6, true) & (POLLOUT | POLLERR | POLLHUP)) !== 0);
}

/** The pending error of a socket (SO_ERROR): 0 when its connect succeeded, else the errno it failed with. */
export function socketError(fd: number): number {
  const val = new Int32Array(1);
  const len = new Uint32Array([4]);
  if (libc.getsockopt(fd, SOL_SOCKET, SO_ERROR, val, len) !== 0) return errno();
  return val[0]!;
}

/** What TCP_INFO says about a connection. */
export interface TcpInfo {
  /**
   * The handshake completed: tcpi_state is TCP_ESTABLISHED, or TCP_CLOSE_WAIT (the peer closed
   * right after it: a listener that closes at once, as agents' listeners of 0.6.0 did).
   */
  established: boolean;
  /** tcpi_rtt: the smoothed RTT, seconds; right after the handshake, the SYN -> SYN-ACK sample. 0 without a sample. */
  rttSeconds: number;
  /** tcpi_total_retrans: segments the kernel sent again on this connection (SYNs, before any data). */
  totalRetrans: number;
}

/** Reads TCP_INFO of `fd`. @throws FlowSocketError */
export function tcpInfo(fd: number): TcpInfo {
  const buf = new Uint8Array(TCP_INFO_LEN);
  const len = new Uint32Array([TCP_INFO_LEN]);
  if (libc.getsockopt(fd, IPPROTO_TCP, TCP_INFO, buf, len) !== 0) throw new FlowSocketError("getsockopt TCP_INFO", errno());
  if (len[0]! < TCP_INFO_LEN) throw new FlowSocketError(`getsockopt TCP_INFO (${len[0]} bytes, want ${TCP_INFO_LEN})`, 0);
  const v = new DataView(buf.buffer);
  return {
    established: buf[TCPI_STATE] === TCP_ESTABLISHED || buf[TCPI_STATE] === TCP_CLOSE_WAIT,
    rttSeconds: v.getUint32(TCPI_RTT, true) / 1e6,
    totalRetrans: v.getUint32(TCPI_TOTAL_RETRANS, true),
  };
}

/** struct linger { l_onoff = 1, l_linger = 0 }. */
const resetLinger = new Int32Array([1, 0]);

/**
 * Closes `fd` with SO_LINGER {on, 0}: an established connection ends with a RST at once and
 * leaves no TIME_WAIT, so the next round can use the same 4-tuple. Errors are ignored (the fd is
 * released either way).
 */
export function closeWithReset(fd: number): void {
  libc.setsockopt(fd, SOL_SOCKET, SO_LINGER, resetLinger, 8);
  libc.close(fd);
}
