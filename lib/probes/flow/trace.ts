/**
 * Paris traceroute of one flow (Augustin et al., IMC 2006): TTL-limited probes that all carry the
 * flow's exact 5-tuple (protocol, addresses, source port, destination port), so ECMP / LAG hashing
 * sends every one of them down the path the flow itself takes, and the trace shows where THAT
 * flow dies, not where a random neighbour's does.
 *
 * - udp: IPv4 + UDP probes from the flow's source port to the responder's port; the payload is a
 *   udp/packet.ts request with FLAG_TRACE, sequence = probe index and a tag under the mesh key,
 *   so the destination's responder answers it (the trace is `reached`). Probes are told apart by
 *   the IP ID (= a per-trace base + probe index): a router's quote may hold only the 8-byte UDP
 *   header, and the IP ID is in the quoted IP header. The responder's reply is matched by its
 *   sequence.
 * - tcp: IPv4 + TCP SYNs from the flow's source port, sequence number = probe index (quoted in
 *   the first 8 bytes of the TCP header); the destination's SYN-ACK or RST acknowledges it
 *   (ack = probe index + 1). Our kernel resets the SYN-ACK (no socket owns it): no connection is
 *   left open on the destination.
 *
 * Probes go out on a raw socket of the flow's protocol with IP_HDRINCL (raw.ts: TTL and IP ID in
 * our own header); routers' Time Exceeded / Destination Unreachable arrive on a raw ICMP socket
 * (IcmpSocket with accept "trace": its datagrams are whole IPv4 packets). One TTL cycle after
 * another, `probeIntervalMs` apart, like the ICMP tracer (lib/probes/icmp/trace.ts), whose
 * TraceOptions and TraceOutcome these traces use. IPv4 only; needs CAP_NET_RAW.
 */
import { randomBytes, randomInt } from "node:crypto";
import { isIPv4, isIPv6 } from "node:net";
import { ICMP_DEST_UNREACH, ICMP_TIME_EXCEEDED } from "../icmp/packet.ts";
import { IPPROTO_TCP, IPPROTO_UDP, strerror } from "../icmp/libc.ts";
import { ipText } from "../icmp/icmp_errors.ts";
import { IcmpSocket, datagramSource, type Datagram } from "../icmp/socket.ts";
import { TRACE_DEFAULTS, type TraceOptions, type TraceOutcome } from "../icmp/trace.ts";
import { FLAG_TRACE, HEADER_LEN, TYPE_REPLY, parseProbe, writeRequest } from "../udp/packet.ts";
import { PROTO_TCP, PROTO_UDP, TCP_ACK, TCP_RST, TCP_SYN, parseIpv4, tcpFlagsAck, tcpSynPacket, udpPacket } from "./headers.ts";
import { ProbeBook } from "../trace_hops.ts";
import { RawFlowSocket, rawSocketProblem, sourceAddressFor } from "./raw.ts";

/** One flow: its protocol, destination and ports. */
export interface Flow {
  kind: "udp" | "tcp";
  /** The destination (IPv4 literal). */
  ip: string;
  sourcePort: number;
  destinationPort: number;
  /** DSCP the flow is sent with (RFC 2474, 0..63; default 0): some paths classify on it. */
  dscp?: number;
}

/** A flow trace's options: those of the ICMP tracer (durations in ms) but payloadSize (udp probes are HEADER_LEN bytes). */
export type FlowTraceOptions = Omit<TraceOptions, "payloadSize">;

/** The error of a trace to an IPv6 destination. */
export const IPV4_ONLY = "flow traces are IPv4 only";
const POLL_MS = 2;

interface ActiveFlowTrace {
  flow: Flow;
  book: ProbeBook;
  /** IP ID of probe 0 (udp): ids base .. base + n − 1 are all non-zero. */
  idBase: number;
  /** The destination's address bytes. */
  dst: Uint8Array;
  sock: RawFlowSocket;
  /** udp: the tag key for replies. */
  key?: Uint8Array;
}

/** Runs flow traces; one per agent. One trace per flow (kind, address, ports) at a time. */
export class FlowTracer {
  /** Replies to our udp probes carry it; others' are not ours. */
  private readonly nonce = randomBytes(8).readBigUInt64BE();
  private icmp: IcmpSocket | Error | undefined;
  private readonly active = new Map<string, ActiveFlowTrace>();
  private timer: ReturnType<typeof setInterval> | undefined;

  /** @param meshKey the current mesh key (HeartbeatResponse.mesh_key): udp probes are tagged with it; undefined before the first heartbeat */
  constructor(private readonly meshKey: () => Uint8Array | undefined = () => undefined) {}

  /** Whether flow traces can run (raw sockets: CAP_NET_RAW), for the agent's start-up log. */
  status(): { ready: boolean; message: string } {
    const problem = rawSocketProblem(IPPROTO_TCP);
    return problem ? { ready: false, message: `flow traces disabled: ${problem}` } : { ready: true, message: "flow traces through raw sockets (Paris traceroute)" };
  }

  /**
   * Traces `flow`. Never rejects for network trouble or a missing capability: those are the
   * outcome's `error` (hops then empty).
   * @throws RangeError for options out of range or ports outside 1..65535; Error when a trace of
   *   the same flow is running
   */
  async trace(flow: Flow, options: Partial<FlowTraceOptions> = {}): Promise<TraceOutcome> {
    const opts = { ...TRACE_DEFAULTS, ...options };
    const n = opts.maxHops * opts.probes;
    if (!(opts.maxHops >= 1 && opts.maxHops <= 255 && opts.probes >= 1 && n <= 0xfff0)) {
      throw new RangeError(`maxHops ${opts.maxHops} × probes ${opts.probes}: each probe needs its own IP ID (at most 65,520), maxHops 1..255`);
    }
    for (const p of [flow.sourcePort, flow.destinationPort]) if (!(Number.isInteger(p) && p >= 1 && p <= 65535)) throw new RangeError(`port ${p} is not 1..65535`);
    const fail = (error: string): TraceOutcome => ({ hops: [], reached: false, error });
    if (isIPv6(flow.ip)) return fail(IPV4_ONLY);
    if (!isIPv4(flow.ip)) return fail(`${flow.ip} is not an IPv4 address`);
    const id = `${flow.kind}/${flow.ip}/${flow.sourcePort}/${flow.destinationPort}`;
    if (this.active.has(id)) throw new Error(`a trace of ${flow.kind} ${flow.sourcePort} -> ${flow.ip}:${flow.destinationPort} is running`);
    const key = flow.kind === "udp" ? this.meshKey() : undefined;
    if (flow.kind === "udp" && !key?.length) return fail("no mesh key yet (the server sends it with heartbeats): the responder would not answer");
    let t: ActiveFlowTrace;
    let src: Uint8Array;
    try {
      src = sourceAddressFor(flow.ip, flow.destinationPort);
      // The raw socket first: without CAP_NET_RAW its error names the capability.
      const sock = new RawFlowSocket(flow.kind === "udp" ? IPPROTO_UDP : IPPROTO_TCP, flow.ip);
      try {
        this.icmpSocket();
      } catch (e) {
        sock.close();
        throw e;
      }
      const dst = Uint8Array.from(flow.ip.split(".").map(Number));
      const maxRttNs = (opts.probeIntervalMs * opts.probes + opts.timeoutMs) * 1e6;
      t = { flow, book: new ProbeBook(ipText(dst), opts.maxHops, opts.probes, maxRttNs), idBase: randomInt(1, 0x10000 - n), dst, sock, key };
    } catch (e) {
      return fail((e as Error).message);
    }
    this.active.set(id, t);
    this.timer ??= setInterval(() => this.poll(), POLL_MS);
    const tos = ((flow.dscp ?? 0) & 0x3f) << 2;
    const payload = new Uint8Array(HEADER_LEN);
    try {
      for (let cycle = 0; cycle < opts.probes; cycle++) {
        if (cycle > 0) await Bun.sleep(opts.probeIntervalMs);
        this.poll();
        const top = Math.min(opts.maxHops, t.book.lastTtl);
        for (let ttl = 1; ttl <= top; ttl++) {
          const i = t.book.index(cycle, ttl);
          const ip = { src, dst: t.dst, ttl, id: t.idBase + i, tos };
          let packet: Uint8Array;
          if (flow.kind === "udp") {
            writeRequest(payload, key!, { dscp: flow.dscp ?? 0, flags: FLAG_TRACE, nonce: this.nonce, sequence: i });
            packet = udpPacket(ip, flow.sourcePort, flow.destinationPort, payload);
          } else {
            packet = tcpSynPacket(ip, flow.sourcePort, flow.destinationPort, i);
          }
          const sent = t.sock.send(packet);
          if (sent < 0) {
            t.book.error ||= `sendto (ttl ${ttl}): ${strerror(-sent)}`;
            continue;
          }
          t.book.sentAt[i] = sent;
        }
      }
      await Bun.sleep(opts.timeoutMs);
      this.poll();
    } finally {
      this.active.delete(id);
      t.sock.close();
      if (this.active.size === 0 && this.timer) {
        clearInterval(this.timer);
        this.timer = undefined;
      }
    }
    return t.book.summary();
  }

  /** Closes the ICMP socket (traces running then see no router answers). */
  close(): void {
    if (this.icmp instanceof IcmpSocket) this.icmp.close();
    this.icmp = undefined;
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** The shared raw ICMP socket, opened on first use. @throws its opening error (again on every use) */
  private icmpSocket(): IcmpSocket {
    if (this.icmp === undefined) {
      try {
        this.icmp = new IcmpSocket(false, 1 << 20, "raw", "trace");
      } catch (e) {
        this.icmp = e as Error;
      }
    }
    if (this.icmp instanceof Error) throw this.icmp;
    return this.icmp;
  }

  private poll(): void {
    if (this.icmp instanceof IcmpSocket) this.icmp.drain((d) => this.onIcmp(d));
    for (const t of this.active.values()) t.sock.drain((buf, len, rxNs) => this.onPacket(t, buf, len, rxNs));
  }

  /** A router's (or the destination's) ICMP error quoting one of our probes. */
  private onIcmp(d: Datagram): void {
    const type = d.buf[d.icmpOffset];
    if (type !== ICMP_TIME_EXCEEDED && type !== ICMP_DEST_UNREACH) return;
    const q = parseIpv4(d.buf, d.icmpOffset + 8, d.end);
    if (!q || (q.proto !== PROTO_UDP && q.proto !== PROTO_TCP)) return;
    const t = this.active.get(`${q.proto === PROTO_UDP ? "udp" : "tcp"}/${ipText(q.dst)}/${q.sport}/${q.dport}`);
    if (!t) return;
    // udp: the IP ID; tcp: the sequence number (the IP ID must agree: a rewritten one is not ours).
    const i = t.flow.kind === "udp" ? q.id - t.idBase : q.word1;
    if (t.flow.kind === "tcp" && q.id !== t.idBase + i) return;
    t.book.record(i, ipText(datagramSource(d, false)), d.rxNs, type === ICMP_DEST_UNREACH);
  }

  /** A packet from the destination on the trace's raw socket: the responder's reply, or a SYN-ACK / RST. */
  private onPacket(t: ActiveFlowTrace, buf: Uint8Array, len: number, rxNs: number): void {
    const p = parseIpv4(buf, 0, len);
    if (!p || p.sport !== t.flow.destinationPort || p.dport !== t.flow.sourcePort) return;
    let i: number;
    if (t.flow.kind === "udp") {
      if (p.proto !== PROTO_UDP) return;
      const body = buf.subarray(p.l4 + 8, len);
      const r = parseProbe(body, body.length, [t.key!]);
      if (!r || r.header.type !== TYPE_REPLY || !(r.header.flags & FLAG_TRACE) || r.header.nonce !== this.nonce) return;
      i = r.header.sequence;
    } else {
      const f = p.proto === PROTO_TCP ? tcpFlagsAck(buf, p.l4, len) : null;
      if (!f || !(f.flags & TCP_ACK) || !(f.flags & (TCP_SYN | TCP_RST))) return;
      i = f.ack - 1;
    }
    t.book.record(i, ipText(p.src), rxNs, true);
  }
}
