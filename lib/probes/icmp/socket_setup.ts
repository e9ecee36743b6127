/**
 * Per-socket IP settings of an ICMP socket, applied right after socket(): the TTL / hop limit,
 * fragmentation (blackbox_exporter's dont_fragment), the local address (source_ip_address) and
 * IP_RECVERR. Sockets with settings are opened by the echo engine per distinct combination
 * (engine_variants.ts); the engine's shared sockets only get the fragmentation default.
 */
import {
  EACCES, EADDRNOTAVAIL, EPERM, IPPROTO_IP, IPPROTO_IPV6, IPV6_DONTFRAG, IPV6_RECVERR, IPV6_UNICAST_HOPS, IP_MTU_DISCOVER,
  IP_PMTUDISC_DO, IP_PMTUDISC_DONT, IP_RECVERR, IP_TTL, SOL_SOCKET, SO_ATTACH_FILTER, addressOf, errno, libc, sockaddrOf, strerror,
} from "./libc.ts";
import { readFileSync } from "node:fs";

/** IP settings of one socket; every field optional (absent: the kernel's default is left alone). */
export interface SocketSetup {
  /** IP_TTL (IPv4) / IPV6_UNICAST_HOPS (IPv6) of every request sent, 1..255. */
  ttl?: number;
  /**
   * true: never fragment (IPv4 IP_MTU_DISCOVER = IP_PMTUDISC_DO, the DF bit on every request;
   * IPv6 IPV6_DONTFRAG): a request larger than the path MTU fails to send with EMSGSIZE, or is
   * answered by a router's "fragmentation needed" / "packet too big". false: IPv4
   * IP_PMTUDISC_DONT (DF never set; the host fragments to the path MTU, routers may fragment
   * further); nothing on IPv6, where only the source fragments (to the path MTU it knows).
   */
  dontFragment?: boolean;
  /** Local address bound before any send (4 or 16 bytes, the socket's family). */
  source?: Uint8Array;
  /** IP_RECVERR / IPV6_RECVERR: ICMP errors about our requests and local send errors go to the error queue. */
  recvErr?: boolean;
  /**
   * Raw sockets: a kernel filter passes only ICMP messages carrying the socket's echo identifier
   * (a raw socket otherwise gets a copy of every echo reply on the host, the shared socket's
   * tens of thousands a second included, which it would read only to drop).
   */
  ownIdentifierOnly?: boolean;
}

/** A setting the kernel refused: which one, and its errno. */
export class SocketSetupError extends Error {
  override name = "SocketSetupError";
  constructor(readonly setting: "ttl" | "dont_fragment" | "source" | "recverr" | "filter", readonly errno: number, message: string) {
    super(message);
  }
}

/**
 * Applies `setup` to the open socket `fd` of family `v6`.
 * @throws SocketSetupError naming the setting the kernel refused (e.g. bind: EADDRNOTAVAIL for an
 *   address that is not one of this host's)
 */
export function applySetup(fd: number, v6: boolean, setup: SocketSetup): void {
  const set = (level: number, opt: number, value: number) => libc.setsockopt(fd, level, opt, new Int32Array([value]), 4) === 0 ? 0 : errno();
  const level = v6 ? IPPROTO_IPV6 : IPPROTO_IP;
  if (setup.ttl !== undefined) {
    const e = set(level, v6 ? IPV6_UNICAST_HOPS : IP_TTL, setup.ttl);
    if (e) throw new SocketSetupError("ttl", e, `${v6 ? "IPV6_UNICAST_HOPS" : "IP_TTL"} ${setup.ttl}: ${strerror(e)}`);
  }
  if (setup.dontFragment !== undefined && (setup.dontFragment || !v6)) {
    const e = v6 ? set(level, IPV6_DONTFRAG, 1) : set(level, IP_MTU_DISCOVER, setup.dontFragment ? IP_PMTUDISC_DO : IP_PMTUDISC_DONT);
    if (e) throw new SocketSetupError("dont_fragment", e, `${v6 ? "IPV6_DONTFRAG" : "IP_MTU_DISCOVER"}: ${strerror(e)}`);
  }
  if (setup.recvErr) {
    const e = set(level, v6 ? IPV6_RECVERR : IP_RECVERR, 1);
    if (e) throw new SocketSetupError("recverr", e, `${v6 ? "IPV6_RECVERR" : "IP_RECVERR"}: ${strerror(e)}`);
  }
  if (setup.source) {
    if (setup.source.length !== (v6 ? 16 : 4)) throw new SocketSetupError("source", 0, `a ${setup.source.length}-byte source address on an ${v6 ? "IPv6" : "IPv4"} socket`);
    const sa = sockaddrOf(setup.source);
    if (libc.bind(fd, sa, sa.length) !== 0) {
      const e = errno();
      const hint = e === EADDRNOTAVAIL ? ": not an address of this host (or of this network namespace)" : "";
      throw new SocketSetupError("source", e, `bind: ${strerror(e)}${hint}`);
    }
  }
}

/**
 * Attaches a classic BPF filter (SO_ATTACH_FILTER) to the raw ICMP socket `fd` that keeps only
 * messages whose echo identifier (bytes 4-5 of the ICMP header) is `identifier`. A raw IPv4
 * socket's filter sees the IP header first (its length from the IHL nibble); an IPv6 one starts at
 * the ICMPv6 header. @returns 0 or the errno of setsockopt
 */
export function attachIdentifierFilter(fd: number, v6: boolean, identifier: number): number {
  // struct sock_filter {u16 code; u8 jt; u8 jf; u32 k}
  const ops: [number, number, number, number][] = [
    ...(v6 ? [] : [[0xb1, 0, 0, 0] as [number, number, number, number]]), // ldxb 4*([0]&0xf): X = IPv4 header length
    [v6 ? 0x28 : 0x48, 0, 0, 4], // ldh [4] (IPv6) / ldh [x + 4] (IPv4): the echo identifier
    [0x15, 0, 1, identifier], // jeq #identifier
    [0x06, 0, 0, 0xffff], // ret: keep (up to 65535 bytes)
    [0x06, 0, 0, 0], // ret: drop
  ];
  const filter = new Uint8Array(ops.length * 8);
  const fv = new DataView(filter.buffer);
  ops.forEach(([code, jt, jf, k], i) => {
    fv.setUint16(i * 8, code, true);
    filter[i * 8 + 2] = jt;
    filter[i * 8 + 3] = jf;
    fv.setUint32(i * 8 + 4, k, true);
  });
  // struct sock_fprog {u16 len; (6 bytes padding) struct sock_filter *filter}: the kernel copies the program during the call.
  const prog = new Uint8Array(16);
  const pv = new DataView(prog.buffer);
  pv.setUint16(0, ops.length, true);
  pv.setBigUint64(8, BigInt(addressOf(filter)), true);
  return libc.setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, prog, 16) === 0 ? 0 : errno();
}

/** Why neither a ping nor a raw socket could be opened, naming the sysctl and capability to fix it. */
export function unavailableReason(v6: boolean, pingErr: number, rawErr: number): string {
  let range = "unknown";
  try {
    range = readFileSync("/proc/sys/net/ipv4/ping_group_range", "utf8").trim().replace(/\s+/, " ");
  } catch {}
  const gid = process.getgid?.() ?? -1;
  const denied = (e: number) => (e === EACCES || e === EPERM ? "not permitted" : strerror(e));
  return (
    `no ICMP${v6 ? "v6" : ""} socket: ping socket ${denied(pingErr)} (net.ipv4.ping_group_range is "${range}", ` +
    `this process's gid is ${gid}; allow it with: sysctl -w net.ipv4.ping_group_range="0 2147483647"), ` +
    `raw socket ${denied(rawErr)} (needs CAP_NET_RAW: run as root or setcap cap_net_raw+ep ./agent)`
  );
}

