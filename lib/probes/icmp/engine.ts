/**
 * The ICMP echo engine: one shared socket per address family, one receive loop, replies
 * demultiplexed by (source address, sequence) and checked against the engine's identifier and
 * 8-byte token, as liboping / go-fastping do instead of a socket per host.
 *
 * Scheduling: each active round sits once in a send heap keyed by the due time of its next echo
 * request, and once its last request is out, in a deadline heap keyed by (last send + timeout).
 * A single tick (every ~1 ms while work is pending) sends what is due, draining the sockets every
 * 64 sends so that replies never pile up behind a burst, and ends rounds whose deadline passed.
 * Accuracy does not depend on the tick: send times are taken right before sendto() and receive
 * times are kernel timestamps (see socket.ts).
 *
 * Time: every due time, deadline and RTT is on one monotonic Clock (clock.ts) shared by the
 * engine and both of its sockets, so a wall-clock step neither turns replies into false loss nor
 * clamps RTTs to 0, and an IPv6 socket opened long after the IPv4 one keeps the same time base.
 *
 * Sequence numbers (RFC 792 "sequence number") are counted per destination and continue across
 * rounds, starting at a random value, so a late reply of an earlier round never matches a later
 * one and the 16-bit wrap is crossed in normal operation.
 *
 * Socket settings (blackbox_exporter's ttl, dont_fragment, source_ip_address): a round that asks
 * for any runs on a socket of its own kind, one per distinct combination (engine_variants.ts);
 * those sockets also read ICMP errors, so such a round names the error that ate a request (time
 * exceeded, fragmentation needed, ...) and ends once every request is answered or refused. Rounds
 * without settings keep the shared sockets, whose IPv4 one never sets DF (IP_PMTUDISC_DONT: a
 * request larger than the path MTU is fragmented, not dropped while the kernel learns the MTU).
 */
import { randomBytes, randomInt } from "node:crypto";
import { isIPv6 } from "node:net";
import { EAGAIN, EMSGSIZE, ENOBUFS, encodeSockaddr } from "./libc.ts";
import { MinHeap } from "./heap.ts";
import { ECHO_HEADER_LEN, ICMP6_ECHO_REQUEST, ICMP_ECHO_REQUEST, parseEchoReply, writeEchoRequest, type EchoReply } from "./packet.ts";
import { IcmpSocket, type Datagram, type QueuedIcmpError, type SocketKind } from "./socket.ts";
import { FamilySockets } from "./family.ts";
import { SYSTEM_CLOCK, type Clock } from "./clock.ts";
import { hasSettings, VARIANT_IDLE_MS, VariantSockets, type VariantSocket } from "./engine_variants.ts";
import { icmpErrorText, sendErrorText } from "./icmp_errors.ts";
import type { EchoOptions, EchoOutcome, EngineStats, Round } from "./engine_types.ts";
import { RoundOutcome, TIMES, hex, u32, type Released } from "./outcome.ts";

export type { EchoOptions, EchoOutcome, EngineStats } from "./engine_types.ts";

/** Sends between two drains of the receive sockets inside one burst. */
const DRAIN_EVERY = 64;
/** Retry delay after EAGAIN/ENOBUFS on send, ns. */
const DEFER_NS = 200_000;

/** Destinations remembered (sockaddr, sequence counter) before the maps start over: churn cannot grow them. */
const MAX_DESTS = 65_536;
/** Released timing buffers kept per request count for reuse. */
const FREE_PER_COUNT = 4096;

/** Shared ICMP engine; create one per agent. */
export class IcmpEngine {
  /** Engine statistics (counters only grow). */
  readonly stats: EngineStats = { sent: 0, received: 0, unmatched: 0, deferred: 0, late: 0, icmpErrors: 0 };
  private readonly token = randomBytes(8);
  private readonly sockets: FamilySockets;
  /** Sockets with settings (ttl, dont_fragment, source), opened per distinct combination. */
  private readonly variants: VariantSockets;
  /** The path MTU of the last local EMSGSIZE read from a variant socket's error queue (0: none). */
  private localMtu = 0;
  private readonly sendQueue = new MinHeap<Round>((r) => r.dueNs);
  private readonly deadlines = new MinHeap<Round>((r) => r.deadlineNs);
  /** Active rounds per destination (IPv4: address as uint32; IPv6: hex). Usually one. */
  private readonly byDest = new Map<number | string, Round[]>();
  /** Next sequence number per destination. */
  private readonly nextSeq = new Map<number | string, number>();
  /** Encoded sockaddr and demux key per IP literal (targets recur every interval). */
  private readonly dests = new Map<string, { v6: boolean; sockaddr: Uint8Array; destKey: number | string }>();
  private active = 0;
  /**
   * Timing buffers of finished rounds given back by release(), per request count: an agent at
   * 10,000 targets would otherwise allocate and drop 10,000 of them per interval (RSS, not speed).
   */
  private readonly free = new Map<number, Float64Array[]>();
  /** Send scratch per request size: each request is written here right before sendto(), which copies it. */
  private readonly scratch = new Map<number, Uint8Array>();
  /** The parsed reply, refilled per datagram. */
  private readonly reply: EchoReply = { identifier: 0, sequence: 0, payloadSize: 0, ok: false };
  private timer: ReturnType<typeof setTimeout> | undefined;
  private readonly onDatagram4 = (d: Datagram) => this.onDatagram(this.sockets.opened(false)!, d);
  private readonly onDatagram6 = (d: Datagram) => this.onDatagram(this.sockets.opened(true)!, d);

  /**
   * @param prefer force a socket kind (tests); "auto" tries a ping socket, then a raw one
   * @param rcvbufBytes receive buffer requested per socket (SO_RCVBUFFORCE when privileged);
   *   8 MiB holds ~8,000 queued replies, i.e. 0.2 s of replies at 40,000 packets/s
   * @param clock where the engine and its sockets read time (tests inject one whose wall clock steps)
   * @param variantIdleMs how long a socket with settings (ttl, dont_fragment, source) stays open after its last round, ms
   */
  constructor(
    private readonly prefer: SocketKind | "auto" = "auto",
    private readonly rcvbufBytes = 8 << 20,
    readonly clock: Clock = SYSTEM_CLOCK,
    variantIdleMs = VARIANT_IDLE_MS,
  ) {
    // IPv4: dont_fragment false means no DF bit (IP_PMTUDISC_DONT), as on the variant sockets.
    this.sockets = new FamilySockets((v6) => new IcmpSocket(v6, this.rcvbufBytes, this.prefer, "replies", this.clock, v6 ? {} : { dontFragment: false }, this.identifiers()));
    this.variants = new VariantSockets(
      (v6, setup) => new IcmpSocket(v6, this.rcvbufBytes, this.prefer, "replies", this.clock, setup, this.identifiers()),
      (v, d) => this.onDatagram(v.sock, d),
      (v, e) => this.onQueuedError(v, e),
      variantIdleMs,
    );
  }

  /** The open sockets with settings: key "family|ttl|df|source", kind, rounds using each now (tests, debugging). */
  variantSockets(): { key: string; kind: SocketKind; users: number }[] {
    return this.variants.list.map((v) => ({ key: v.key, kind: v.sock.kind, users: v.users }));
  }

  /** Echo identifiers of the engine's open raw sockets: each raw socket sees every reply and keeps those with its own. */
  private identifiers(): Set<number> {
    const ids = this.variants?.identifiers() ?? new Set<number>();
    for (const s of [this.sockets?.opened(false), this.sockets?.opened(true)]) if (s?.kind === "raw") ids.add(s.identifier);
    return ids;
  }

  /**
   * Opens (once) and returns the socket for a family.
   * @throws IcmpUnavailableError when neither a ping nor a raw socket is allowed
   */
  socket(v6: boolean): IcmpSocket {
    return this.sockets.get(v6);
  }

  /** Which kind of socket a family uses (and its estimated receive buffer, bytes), or why none is available. */
  describe(v6: boolean): { kind: SocketKind; identifier: number; rcvbufBytes: number } | { error: string } {
    const d = this.sockets.describe(v6);
    return "error" in d ? d : { kind: d.socket.kind, identifier: d.socket.identifier, rcvbufBytes: d.socket.rcvbuf };
  }

  /**
   * Runs one round: `count` echo requests to `ip` (an IP literal), `intervalMs` apart.
   * Resolves when every request is answered or the last one timed out (with settings: or was
   * refused by an ICMP error or the host); never rejects for network errors (they are in `error`).
   * @throws IcmpUnavailableError (synchronously) when the family has no socket; Error for a bad
   *   literal, or when a socket with the round's settings cannot be had (engine_variants.ts:
   *   VariantSockets.acquire names the option)
   */
  echo(ip: string, opts: EchoOptions): Promise<EchoOutcome> {
    let dest = this.dests.get(ip);
    if (!dest) {
      const v6 = isIPv6(ip);
      const sockaddr = encodeSockaddr(ip);
      dest = { v6, sockaddr, destKey: v6 ? hex(sockaddr, 8, 16) : u32(sockaddr, 4) };
      if (this.dests.size >= MAX_DESTS) this.dests.clear();
      this.dests.set(ip, dest);
    }
    const { v6, sockaddr, destKey } = dest;
    const variant = hasSettings(opts) ? this.variants.acquire(v6, ip, opts) : undefined;
    const sock = variant ? variant.sock : this.socket(v6);
    if (this.nextSeq.size >= MAX_DESTS && !this.nextSeq.has(destKey)) this.nextSeq.clear(); // counters restart at random values
    const seqBase = opts.firstSequence ?? this.nextSeq.get(destKey) ?? randomInt(0x10000);
    this.nextSeq.set(destKey, (seqBase + opts.count) & 0xffff);
    return new Promise((done) => {
      const now = this.clock.monotonicNs();
      const times = this.free.get(opts.count)?.pop() ?? new Float64Array(2 * opts.count);
      const rttNs = times.subarray(opts.count).fill(NaN);
      const round: Round = {
        v6, ip, sock, variant, lost: 0, sockaddr, destKey, opts,
        seqBase, startNs: now, dueNs: now, deadlineNs: Infinity,
        sentAt: times.subarray(0, opts.count), rttNs, times,
        sent: 0, received: 0, duplicates: 0, corrupted: 0, error: "", lastSendNs: 0, finished: false, done,
      };
      const list = this.byDest.get(destKey);
      if (list) list.push(round);
      else this.byDest.set(destKey, [round]);
      this.active++;
      this.sendQueue.push(round);
      this.schedule(0);
    });
  }

  /**
   * Gives a finished round's buffers back for reuse by later rounds. Optional (an outcome never
   * released is simply garbage-collected); after it, `outcome.rttNs` and the getters are invalid.
   */
  release(outcome: EchoOutcome): void {
    const times = (outcome as Released)[TIMES];
    if (!times) return;
    (outcome as Released)[TIMES] = undefined;
    const count = times.length / 2;
    let list = this.free.get(count);
    if (!list) this.free.set(count, (list = []));
    if (list.length < FREE_PER_COUNT) list.push(times);
  }

  /** Closes every socket; pending rounds finish with what they have. */
  close(): void {
    for (const list of [...this.byDest.values()]) for (const r of [...list]) this.finish(r);
    this.sendQueue.clear();
    this.deadlines.clear();
    this.sockets.close();
    this.variants.close();
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  private schedule(ms: number): void {
    if (this.timer === undefined) this.timer = setTimeout(() => this.tick(), ms);
  }

  private tick(): void {
    this.timer = undefined;
    const clock = this.clock;
    // Receive first so that replies already queued are matched before their rounds expire.
    this.drainAll();
    let now = clock.monotonicNs();
    let burst = 0;
    for (let r = this.sendQueue.peek(); r && r.dueNs <= now; r = this.sendQueue.peek()) {
      this.sendQueue.pop();
      if (r.finished) continue;
      if (!this.sendNext(r)) {
        r.dueNs = now + DEFER_NS; // socket buffer full: retry shortly, never a false loss
        this.sendQueue.push(r);
        this.stats.deferred++;
        break;
      }
      if (++burst % DRAIN_EVERY === 0) this.drainAll();
      now = clock.monotonicNs();
    }
    this.drainAll();
    now = clock.monotonicNs();
    for (let r = this.deadlines.peek(); r && r.deadlineNs <= now; r = this.deadlines.peek()) {
      this.deadlines.pop();
      if (!r.finished) this.finish(r);
    }
    if (this.active > 0) {
      const next = this.sendQueue.peek();
      this.schedule(next ? Math.min(1, Math.max(0, (next.dueNs - now) / 1e6)) : 1);
    }
  }

  private drainAll(): void {
    this.sockets.opened(false)?.drain(this.onDatagram4);
    this.sockets.opened(true)?.drain(this.onDatagram6);
    if (this.variants.list.length > 0) this.variants.drain();
  }

  /** Sends the round's next request and requeues it. @returns false when the send must be retried */
  private sendNext(r: Round): boolean {
    const sock = r.sock;
    const index = r.sent;
    const size = ECHO_HEADER_LEN + r.opts.payloadSize;
    // One view per request size, not per request (a view per packet was garbage at 40,000/s).
    let packet = this.scratch.get(size);
    if (!packet) this.scratch.set(size, (packet = new Uint8Array(size)));
    writeEchoRequest(packet, r.v6, sock.identifier, (r.seqBase + index) & 0xffff, this.token);
    const t = sock.send(packet, r.sockaddr);
    if (t === -EAGAIN || t === -ENOBUFS) return false;
    r.sent++;
    this.stats.sent++;
    if (t < 0) {
      r.sentAt[index] = NaN;
      r.lastSendNs = this.clock.monotonicNs();
      if (r.variant) {
        r.lost++;
        // A refused DF send queued the path MTU on the error queue (IP_RECVERR) during sendto.
        this.localMtu = 0;
        if (-t === EMSGSIZE) r.variant.sock.drainErrors(r.variant.onError, true);
        if (!r.error) r.error = sendErrorText(-t, this.facts(r), this.localMtu);
        if (r.finished) return true; // that drain's ICMP errors accounted for the rest
      } else if (!r.error) r.error = sendErrorText(-t, this.facts(r), 0);
    } else {
      r.sentAt[index] = t;
      r.lastSendNs = t;
    }
    const intervalNs = r.opts.intervalMs * 1e6;
    if (r.sent < r.opts.count) {
      r.dueNs = Math.max(r.startNs + r.sent * intervalNs, r.lastSendNs + intervalNs / 2);
      this.sendQueue.push(r);
    } else if (r.variant && r.received + r.lost === r.opts.count) {
      this.finish(r); // every request answered or refused: nothing left to wait for
    } else {
      r.deadlineNs = r.lastSendNs + r.opts.timeoutMs * 1e6;
      this.deadlines.push(r);
    }
    return true;
  }

  private onDatagram(sock: IcmpSocket, d: Datagram): void {
    const reply = parseEchoReply(d.buf, d.icmpOffset, d.end, sock.v6, this.token, this.reply);
    if (!reply) return; // not an echo reply of this engine (another pinger's, or not an echo reply)
    if (sock.kind === "raw" && reply.identifier !== sock.identifier) return;
    const list = this.byDest.get(sock.v6 ? hex(d.sourceBuf, d.sourceOffset, 16) : u32(d.sourceBuf, d.sourceOffset));
    let r: Round | undefined;
    let index = -1;
    if (list) {
      for (const c of list) {
        if (c.sock !== sock) continue;
        const i = (reply.sequence - c.seqBase) & 0xffff;
        if (i < c.sent) {
          r = c;
          index = i;
          break;
        }
      }
    }
    if (!r) {
      this.stats.unmatched++;
      return;
    }
    if (!reply.ok || reply.payloadSize !== r.opts.payloadSize) {
      r.corrupted++;
      return;
    }
    if (!Number.isNaN(r.rttNs[index]!)) {
      r.duplicates++;
      return;
    }
    const rtt = d.rxNs - r.sentAt[index]!;
    if (!(rtt <= r.opts.timeoutMs * 1e6)) {
      this.stats.late++; // too late (or its send failed): stays lost
      return;
    }
    r.rttNs[index] = Math.max(rtt, 0);
    r.received++;
    this.stats.received++;
    if (r.received + r.lost === r.opts.count && r.sent === r.opts.count) this.finish(r);
  }

  /**
   * An error from a variant socket's queue: an ICMP error quoting one of our requests (matched by
   * destination, identifier on raw sockets, and sequence), or a local one (the MTU of a refused
   * DF send, read by sendNext).
   */
  private onQueuedError(v: VariantSocket, e: QueuedIcmpError): void {
    if (e.origin === "local") {
      if (e.errno === EMSGSIZE) this.localMtu = e.info;
      return;
    }
    const sock = v.sock;
    const q = e.request;
    if (q.length < 8 || q[0] !== (sock.v6 ? ICMP6_ECHO_REQUEST : ICMP_ECHO_REQUEST)) return;
    // Every raw socket with IP_RECVERR gets the errors of every raw ICMP socket: keep our own.
    if (sock.kind === "raw" && ((q[4]! << 8) | q[5]!) !== sock.identifier) return;
    const list = this.byDest.get(sock.v6 ? hex(e.destination, 0, 16) : u32(e.destination, 0));
    if (!list) return;
    const sequence = (q[6]! << 8) | q[7]!;
    for (const c of list) {
      if (c.sock !== sock) continue;
      const i = (sequence - c.seqBase) & 0xffff;
      if (i >= c.sent) continue;
      this.stats.icmpErrors++;
      if (Number.isNaN(c.sentAt[i]!) || !Number.isNaN(c.rttNs[i]!)) return; // already answered or refused
      c.sentAt[i] = NaN; // a reply after its error cannot count
      c.lost++;
      if (!c.error) c.error = icmpErrorText(e, this.facts(c));
      if (c.sent === c.opts.count && c.received + c.lost === c.opts.count) this.finish(c);
      return;
    }
  }

  private facts(r: Round) {
    return { v6: r.v6, ip: r.ip, payloadSize: r.opts.payloadSize, ttl: r.opts.ttl, dontFragment: r.opts.dontFragment };
  }

  private finish(r: Round): void {
    if (r.finished) return;
    r.finished = true;
    this.active--;
    if (r.variant) this.variants.release(r.variant);
    const list = this.byDest.get(r.destKey)!;
    if (list.length === 1) this.byDest.delete(r.destKey);
    else list.splice(list.indexOf(r), 1);
    r.done(new RoundOutcome(r));
  }
}
