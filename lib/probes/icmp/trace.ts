/**
 * MTR-style path trace on the project's own ICMP sockets: echo requests with TTL (IPv6: hop
 * limit) 1, 2, ... up to the target, and the ICMP Time Exceeded messages routers answer with
 * (RFC 792 type 11 / RFC 4443 type 3; RFC 1812 4.3.2.3 says they quote our request's header, so
 * its identifier and sequence tell which probe expired where). Each cycle sends one request per
 * TTL; `probes` cycles run `probeIntervalMs` apart, as `mtr --report -c probes -i interval` does.
 *
 * Sockets: a raw socket sees the errors as datagrams (its ICMP filter passes echo reply, Time
 * Exceeded and Destination Unreachable); an unprivileged ping socket gets them through IP_RECVERR
 * on its error queue, with the router's address in SO_EE_OFFENDER. The tracer owns its sockets,
 * so setting the TTL never touches the engine's regular rounds.
 */
import { randomBytes, randomInt } from "node:crypto";
import { isIPv6 } from "node:net";
import { encodeSockaddr, strerror } from "./libc.ts";
import {
  ECHO_HEADER_LEN, ICMP6_DEST_UNREACH, ICMP6_ECHO_REQUEST, ICMP6_TIME_EXCEEDED, ICMP_DEST_UNREACH, ICMP_ECHO_REQUEST, ICMP_TIME_EXCEEDED,
  parseEchoReply, writeEchoRequest,
} from "./packet.ts";
import { FamilySockets } from "./family.ts";
import { ProbeBook, type TraceOutcome } from "../trace_hops.ts";
export type { HopOutcome, TraceOutcome } from "../trace_hops.ts";
import { ipText as canonical } from "./icmp_errors.ts";
import { IcmpSocket, datagramSource, type Datagram, type QueuedIcmpError, type SocketKind } from "./socket.ts";

/** Trace parameters; durations in milliseconds. */
export interface TraceOptions {
  /** Highest TTL tried (mtr -m; default 30). */
  maxHops: number;
  /** Requests per TTL (mtr --report-cycles; default 10). */
  probes: number;
  /** Time between two cycles, ms (mtr -i; default 1000: routers rate-limit ICMP errors, ~1/s each). */
  probeIntervalMs: number;
  /** Wait for the last answers after the last cycle, ms. */
  timeoutMs: number;
  /** ICMP data bytes after the echo header (≥ 8). */
  payloadSize: number;
}

/** The defaults of TraceOptions (the agent's -agent.trace.* flags). */
export const TRACE_DEFAULTS: TraceOptions = { maxHops: 30, probes: 10, probeIntervalMs: 1000, timeoutMs: 1000, payloadSize: 56 };


interface ActiveTrace {
  opts: TraceOptions;
  seqBase: number;
  book: ProbeBook;
}

const POLL_MS = 2;

/** Runs path traces; share one per agent. One trace per destination at a time. */
export class PathTracer {
  private readonly token = randomBytes(8);
  // A raw socket also gets a copy of every echo reply on the host (the agent's own rounds: up to
  // ~40,000/s at 10,000 targets), dropped in JS by token; 4 MiB rides out stalls.
  private readonly sockets = new FamilySockets((v6) => new IcmpSocket(v6, 4 << 20, this.prefer, "trace"));
  private readonly active = new Map<string, ActiveTrace>();
  private timer: ReturnType<typeof setInterval> | undefined;

  /** @param prefer force a socket kind (tests); "auto" tries a ping socket, then a raw one */
  constructor(private readonly prefer: SocketKind | "auto" = "auto") {}

  /**
   * Traces the path to `ip` (an IP literal).
   * @throws IcmpUnavailableError when the family has no ICMP socket; Error when a trace to `ip` is
   *   running; RangeError when maxHops × probes exceeds the 65,536 sequence numbers
   */
  async trace(ip: string, options: Partial<TraceOptions> = {}): Promise<TraceOutcome> {
    const opts = { ...TRACE_DEFAULTS, ...options };
    if (!(opts.maxHops >= 1 && opts.maxHops <= 255 && opts.probes >= 1 && opts.maxHops * opts.probes <= 0x10000)) {
      throw new RangeError(`maxHops ${opts.maxHops} × probes ${opts.probes}: each probe needs its own sequence number (at most 65,536), maxHops 1..255`);
    }
    const v6 = isIPv6(ip);
    const sock = this.sockets.get(v6);
    const sockaddr = encodeSockaddr(ip);
    const dest = canonical(v6 ? sockaddr.subarray(8, 24) : sockaddr.subarray(4, 8));
    if (this.active.has(dest)) throw new Error(`a trace to ${ip} is running`);
    const t: ActiveTrace = { opts, seqBase: randomInt(0x10000), book: new ProbeBook(dest, opts.maxHops, opts.probes, (opts.probeIntervalMs * opts.probes + opts.timeoutMs) * 1e6) };
    this.active.set(dest, t);
    this.timer ??= setInterval(() => this.poll(), POLL_MS);
    const packet = new Uint8Array(ECHO_HEADER_LEN + opts.payloadSize);
    try {
      for (let cycle = 0; cycle < opts.probes; cycle++) {
        if (cycle > 0) await Bun.sleep(opts.probeIntervalMs);
        this.poll();
        const top = Math.min(opts.maxHops, t.book.lastTtl);
        for (let ttl = 1; ttl <= top; ttl++) {
          const i = t.book.index(cycle, ttl);
          writeEchoRequest(packet, v6, sock.identifier, (t.seqBase + i) & 0xffff, this.token);
          sock.setHopLimit(ttl);
          // (A ping socket with IP_RECVERR reports the last ICMP error once more as the next call's
          // errno, sending nothing: IcmpSocket.send sends again then.)
          const sent = sock.send(packet, sockaddr);
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
      this.active.delete(dest);
      if (this.active.size === 0 && this.timer) {
        clearInterval(this.timer);
        this.timer = undefined;
      }
    }
    return t.book.summary();
  }

  /** Closes the sockets. */
  close(): void {
    this.sockets.close();
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Which kind of socket a family uses, or why none is available. */
  describe(v6: boolean): { kind: SocketKind } | { error: string } {
    const d = this.sockets.describe(v6);
    return "error" in d ? d : { kind: d.socket.kind };
  }

  private poll(): void {
    for (const s of [this.sockets.opened(false), this.sockets.opened(true)]) {
      if (!s) continue;
      s.drain((d) => this.onDatagram(s, d));
      s.drainErrors((e) => this.onQueuedError(s, e));
    }
  }

  /** Raw sockets: echo replies and ICMP errors quoting our request; ping sockets: echo replies. */
  private onDatagram(sock: IcmpSocket, d: Datagram): void {
    // A raw socket also sees every other echo reply on the host (the engine's rounds): reject
    // those by token and type before building any string.
    const type = d.buf[d.icmpOffset];
    const reply = parseEchoReply(d.buf, d.icmpOffset, d.end, sock.v6, this.token);
    if (reply) {
      if (sock.kind === "raw" && reply.identifier !== sock.identifier) return;
      const from = canonical(datagramSource(d, sock.v6));
      this.record(this.active.get(from), reply.sequence, from, d.rxNs, true);
      return;
    }
    const te = sock.v6 ? ICMP6_TIME_EXCEEDED : ICMP_TIME_EXCEEDED;
    const un = sock.v6 ? ICMP6_DEST_UNREACH : ICMP_DEST_UNREACH;
    if (sock.kind !== "raw" || (type !== te && type !== un)) return;
    // The quoted request: its IP header (IPv4: IHL words; IPv6: 40 bytes, no extension headers), then its ICMP header.
    const inner = d.icmpOffset + 8;
    let dstAt: number, icmpAt: number;
    if (sock.v6) {
      if (d.end < inner + 48 || d.buf[inner + 6] !== 58) return;
      dstAt = inner + 24;
      icmpAt = inner + 40;
    } else {
      if (d.end < inner + 20) return;
      if (d.buf[inner + 9] !== 1) return;
      dstAt = inner + 16;
      icmpAt = inner + (d.buf[inner]! & 0x0f) * 4;
      if (d.end < icmpAt + 8) return;
    }
    if (d.buf[icmpAt] !== (sock.v6 ? ICMP6_ECHO_REQUEST : ICMP_ECHO_REQUEST)) return;
    if (((d.buf[icmpAt + 4]! << 8) | d.buf[icmpAt + 5]!) !== sock.identifier) return;
    const dest = canonical(d.buf.subarray(dstAt, dstAt + (sock.v6 ? 16 : 4)));
    this.record(this.active.get(dest), (d.buf[icmpAt + 6]! << 8) | d.buf[icmpAt + 7]!, canonical(datagramSource(d, sock.v6)), d.rxNs, type === un);
  }

  /** Ping sockets: Time Exceeded / Destination Unreachable from the error queue (IP_RECVERR). */
  private onQueuedError(sock: IcmpSocket, e: QueuedIcmpError): void {
    const te = sock.v6 ? ICMP6_TIME_EXCEEDED : ICMP_TIME_EXCEEDED;
    const un = sock.v6 ? ICMP6_DEST_UNREACH : ICMP_DEST_UNREACH;
    if ((e.type !== te && e.type !== un) || e.request.length < 8) return;
    const sequence = (e.request[6]! << 8) | e.request[7]!;
    this.record(this.active.get(canonical(e.destination)), sequence, canonical(e.offender), e.rxNs, e.type === un);
  }

  /** Files an answer to probe `sequence` of trace `t`; `final`: nothing lies beyond this TTL. */
  private record(t: ActiveTrace | undefined, sequence: number, from: string, rxNs: number, final: boolean): void {
    if (t) t.book.record((sequence - t.seqBase) & 0xffff, from, rxNs, final);
  }
}

