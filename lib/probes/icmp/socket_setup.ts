/**
 * Per-socket IP settings of an ICMP socket, applied right after socket(): the TTL / hop limit,
 * fragmentation (blackbox_exporter's dont_fragment), the local address (source_ip_address) and
 * IP_RECVERR. Sockets with settings are opened by the echo engine per distinct combination
 * (engine_variants.ts); the engine's shared sockets only get the fragmentation default.
 */
import {
  EACCES, EADDRNOTAVAIL, EPERM, IPPROTO_IP, IPPROTO_IPV6, IPV6_DONTFRAG, IPV6_RECVERR, IPV6_UNICAST_HOPS, IP_MTU_DISCOVER,
  IP_PMTUDISC_DO, IP_PMTUDISC_DONT, IP_RECVERR, IP_TTL, errno, libc, sockaddrOf, strerror,
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
}

/** A setting the kernel refused: which one, and its errno. */
export class SocketSetupError extends Error {
  override name = "SocketSetupError";
  constructor(readonly setting: "ttl" | "dont_fragment" | "source" | "recverr", readonly errno: number, message: string) {
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

