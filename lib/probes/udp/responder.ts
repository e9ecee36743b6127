/**
 * The agent's UDP responder (-agent.udp.listen.port), NetNORAD's responder: it answers the udp
 * kind's probes (packet.ts) of other agents with a reply of the same length (never an amplifier)
 * carrying its kernel receive time and its send time, so the prober subtracts the time the probe
 * spent here (its dwell).
 *
 * Every reply carries the reflector count of its flow (reflector.ts; packet.ts bytes 20..23): how
 * many requests of that flow (source IP and port, the prober's nonce) arrived here, counted only
 * for requests whose tag verified, after the rate limits (a request dropped by them is lost on the
 * way in, as far as the prober can tell). Path-trace probes (FLAG_TRACE) are not counted (0).
 *
 * It answers only requests whose HMAC tag verifies under the current or the previous mesh key
 * (HeartbeatResponse.mesh_key; before the first key it answers nothing). Hostile input is dropped
 * cheapest check first: length and magic, then the type byte, then two token buckets (all replies
 * together, and replies per source IP), and only then the HMAC, so a flood costs no hashing
 * beyond the rate limit. It never throws on any input.
 *
 * The socket is drained on a timer every `drainMs` (a few ms) rather than on readiness: the wait
 * costs no accuracy, because the receive time in the reply is the kernel's stamp of the packet's
 * arrival and the send time is read right before sendto(): the wait lies between the two, inside
 * the dwell the prober subtracts.
 */
import type { Logger } from "../../log.ts";
import { FLAG_TRACE, TYPE_REQUEST, looksLikeProbe, parseProbe, toReply } from "./packet.ts";
import { ReflectorCounts } from "./reflector.ts";
import { RESPONDER_MAX_RATE, RESPONDER_MAX_SOURCES, RESPONDER_PER_SOURCE_RATE } from "./responder_limits.ts";
import { UdpSocket, realtimeUnixNs, type UdpDatagram } from "./socket.ts";

/** How often the socket is drained, ms. */
export const RESPONDER_DRAIN_MS = 3;
/** Drops are logged at most this often, ms. */
const DROP_LOG_MS = 60_000;

/** Why a datagram got no reply. */
export type DropReason = "malformed" | "no_key" | "rate_limited" | "bad_tag";

/** What the responder did since it started. */
export interface ResponderCounters {
  answered: number;
  dropped: Record<DropReason, number>;
}

/** Responder settings. */
export interface ResponderOptions {
  /** UDP port to listen on (0: one of the kernel's choice, tests). */
  port: number;
  /** The mesh keys to accept, current first, then the previous one; empty until the server sent one. */
  keys: () => readonly Uint8Array[];
  /** Replies per second in all (token bucket, a second's worth of burst). Default RESPONDER_MAX_RATE. */
  maxRate?: number;
  /** Replies per second to one source IP (default min(maxRate, RESPONDER_PER_SOURCE_RATE), a second's burst). */
  perSourceRate?: number;
  /** Flows whose reflector counts are kept (default REFLECTOR_MAX_FLOWS of reflector.ts). */
  maxFlows?: number;
  /** Drain period, ms (default RESPONDER_DRAIN_MS). */
  drainMs?: number;
  /** Bind 0.0.0.0 only (tests). */
  ipv4Only?: boolean;
  log?: Logger;
}

/** The big-endian uint32 at `at` of `b`. */
const u32 = (b: Uint8Array, at: number): number => ((b[at]! << 24) | (b[at + 1]! << 16) | (b[at + 2]! << 8) | b[at + 3]!) >>> 0;

/** A token bucket: `rate` tokens per second, at most `burst` stored. */
class Bucket {
  tokens: number;
  at: number;
  constructor(private readonly rate: number, private readonly burst: number, nowMs: number) {
    this.tokens = burst;
    this.at = nowMs;
  }
  take(nowMs: number): boolean {
    this.tokens = Math.min(this.burst, this.tokens + ((nowMs - this.at) * this.rate) / 1000);
    this.at = nowMs;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}

/** A running responder. */
export class UdpResponder {
  readonly counters: ResponderCounters = { answered: 0, dropped: { malformed: 0, no_key: 0, rate_limited: 0, bad_tag: 0 } };
  /** The port it listens on. */
  readonly port: number;
  private readonly socket: UdpSocket;
  private readonly global: Bucket;
  private readonly perSource = new Map<string, Bucket>();
  private readonly perSourceRate: number;
  private readonly reflector: ReflectorCounts;
  private timer: ReturnType<typeof setInterval> | undefined;
  private lastLogMs = 0;
  private loggedDrops = 0;

  /**
   * Binds the port and starts answering.
   * @throws Error naming the port when it cannot be bound (in use, privileged)
   */
  constructor(private readonly opts: ResponderOptions) {
    const rate = Math.max(1, opts.maxRate ?? RESPONDER_MAX_RATE);
    this.socket = new UdpSocket(opts.port, { ipv4Only: opts.ipv4Only, rcvbufBytes: 4 << 20 });
    this.port = this.socket.port;
    this.global = new Bucket(rate, rate, performance.now());
    this.perSourceRate = Math.max(1, opts.perSourceRate ?? Math.min(rate, RESPONDER_PER_SOURCE_RATE));
    this.reflector = new ReflectorCounts(opts.maxFlows);
    this.timer = setInterval(() => this.drain(), opts.drainMs ?? RESPONDER_DRAIN_MS);
  }

  /** Pauses (true) or resumes answering; queued requests wait in the socket meanwhile (tests hold replies this way). */
  pause(paused: boolean): void {
    if (paused) {
      clearInterval(this.timer);
      this.timer = undefined;
    } else if (!this.timer && this.socket.open) this.timer = setInterval(() => this.drain(), this.opts.drainMs ?? RESPONDER_DRAIN_MS);
  }

  /** Answers everything queued now. @returns datagrams read */
  drain(): number {
    let n = 0;
    try {
      n = this.socket.drain((d) => this.answer(d));
    } catch (e) {
      this.opts.log?.error({ err: String(e) }, "udp responder: drain failed");
    }
    this.logDrops();
    return n;
  }

  private answer(d: UdpDatagram): void {
    const c = this.counters;
    const buf = d.buf.subarray(d.offset, d.offset + Math.min(d.len, d.buf.length - d.offset));
    if (!looksLikeProbe(buf, d.len) || buf[4] !== TYPE_REQUEST) {
      c.dropped.malformed++;
      return;
    }
    const keys = this.opts.keys();
    if (keys.length === 0) {
      c.dropped.no_key++;
      return;
    }
    const now = performance.now();
    if (!this.global.take(now) || !this.sourceBucket(d.sourceIp, now).take(now)) {
      c.dropped.rate_limited++;
      return;
    }
    const p = parseProbe(buf, d.len, keys);
    if (!p || p.header.type !== TYPE_REQUEST) {
      c.dropped.bad_tag++;
      return;
    }
    this.socket.setDscp(p.header.dscp);
    // The nonce's halves straight from the bytes (8..11, 12..15): no BigInt arithmetic per packet.
    const count = p.header.flags & FLAG_TRACE ? 0 : this.reflector.next(d.sourceIp, d.sourcePort, u32(buf, 8), u32(buf, 12));
    // The send time goes into the tagged bytes: read it, tag, send (the HMAC's microseconds are
    // the only part of the stay here that lands in the prober's RTT).
    const key = keys[p.keyIndex]!;
    if (this.socket.reply(buf, d.len, d, () => toReply(buf, key, d.rxUnixNs, realtimeUnixNs(), count)) >= 0) c.answered++;
  }

  /** The bucket of a source IP; the least recently seen source is forgotten beyond RESPONDER_MAX_SOURCES. */
  private sourceBucket(ip: string, now: number): Bucket {
    let b = this.perSource.get(ip);
    if (b) this.perSource.delete(ip);
    else {
      if (this.perSource.size >= RESPONDER_MAX_SOURCES) this.perSource.delete(this.perSource.keys().next().value!);
      b = new Bucket(this.perSourceRate, this.perSourceRate, now);
    }
    this.perSource.set(ip, b);
    return b;
  }

  private logDrops(): void {
    const d = this.counters.dropped;
    const drops = d.malformed + d.no_key + d.rate_limited + d.bad_tag;
    if (drops === this.loggedDrops || !this.opts.log) return;
    const now = Date.now();
    if (now - this.lastLogMs < DROP_LOG_MS) return;
    this.lastLogMs = now;
    this.loggedDrops = drops;
    this.opts.log.warn({ port: this.port, answered: this.counters.answered, ...d }, "udp responder dropped datagrams (totals since start): malformed, no mesh key yet, over -agent.udp.responder.max.rate, or a tag that does not verify");
  }

  /** Flows whose reflector counts are kept now. */
  get countedFlows(): number {
    return this.reflector.size;
  }

  /** Stops answering and closes the socket. */
  close(): void {
    clearInterval(this.timer);
    this.timer = undefined;
    this.socket.close();
  }
}
