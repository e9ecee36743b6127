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
 */
import { randomBytes, randomInt } from "node:crypto";
import { isIPv6 } from "node:net";
import { EAGAIN, ENOBUFS, encodeSockaddr, strerror } from "./libc.ts";
import { MinHeap } from "./heap.ts";
import { ECHO_HEADER_LEN, parseEchoReply, writeEchoRequest, type EchoReply } from "./packet.ts";
import { FamilySockets, IcmpSocket, type Datagram, type SocketKind } from "./socket.ts";
import { SYSTEM_CLOCK, type Clock } from "./clock.ts";

/** Parameters of one echo round; durations in milliseconds. */
export interface EchoOptions {
  /** Echo requests to send, 1..65535. */
  count: number;
  /** Spacing of requests to this destination, ms (never closer than half of it, even after a stall). */
  intervalMs: number;
  /** ICMP data bytes after the 8-byte echo header (≥ 8: the engine token fills the first 8). */
  payloadSize: number;
  /** Per-packet timeout, ms: a reply later than this after its request counts as lost. */
  timeoutMs: number;
  /**
   * Sequence number of the first request instead of the per-destination counter (tests use it to
   * cross the 16-bit wrap on purpose). Two concurrent rounds to one address must not overlap.
   */
  firstSequence?: number;
}

/** Outcome of one echo round. RTTs in seconds. */
export interface EchoOutcome {
  sent: number;
  received: number;
  /** Extra replies for requests already answered (RFC 792 allows duplicates; not counted as received). */
  duplicates: number;
  /** Replies carrying our token whose payload or checksum did not match what was sent (ignored). */
  corrupted: number;
  /** RTT of each answered request in send order, seconds (receive time − time before sendto, both monotonic; socket.ts). Built on access. */
  rttsSeconds: number[];
  /**
   * RTT per request, nanoseconds, NaN when unanswered (index i: sequence firstSequence + i). The
   * round's own buffer, no copy: valid until `IcmpEngine.release(outcome)`.
   */
  rttNs: Float64Array;
  /** RTT per request, seconds, NaN when unanswered: index i is sequence (firstSequence + i) mod 2^16. */
  requestRttsSeconds: number[];
  /** Sequence number of the first request (the others follow, modulo 2^16). */
  firstSequence: number;
  /** First send error, "" if none. */
  error: string;
}

interface Round {
  v6: boolean;
  sockaddr: Uint8Array;
  destKey: number | string;
  opts: EchoOptions;
  seqBase: number;
  startNs: number;
  /** Due time of the next request (send heap key), ns. */
  dueNs: number;
  /** lastSendNs + timeout once every request is out (deadline heap key), ns. */
  deadlineNs: number;
  /** Send time per request, ns (NaN: send failed): the first half of `times`. */
  sentAt: Float64Array;
  /** RTT per request, ns (NaN: unanswered): the second half of `times`. */
  rttNs: Float64Array;
  /** One buffer of 2 × count doubles holding sentAt and rttNs, recycled through the free list. */
  times: Float64Array;
  sent: number;
  received: number;
  duplicates: number;
  corrupted: number;
  error: string;
  lastSendNs: number;
  finished: boolean;
  done: (o: EchoOutcome) => void;
}

/** Statistics of the engine since start, for debugging and the benchmark. */
export interface EngineStats {
  sent: number;
  received: number;
  /** Echo replies with our token but no active round (late after their round ended, or forged). */
  unmatched: number;
  /** Send attempts deferred because the socket buffer was full. */
  deferred: number;
  /** Replies matched to a request but later than its timeout (monotonic send and receive times; counted lost). */
  late: number;
}

/** Sends between two drains of the receive sockets inside one burst. */
const DRAIN_EVERY = 64;
/** Retry delay after EAGAIN/ENOBUFS on send, ns. */
const DEFER_NS = 200_000;
/** The outcome's hidden link to its round's timing buffer (for release()). */
const TIMES = Symbol("times");
type Released = EchoOutcome & { [TIMES]?: Float64Array };

/** Destinations remembered (sockaddr, sequence counter) before the maps start over: churn cannot grow them. */
const MAX_DESTS = 65_536;
/** Released timing buffers kept per request count for reuse. */
const FREE_PER_COUNT = 4096;

/** Shared ICMP engine; create one per agent. */
export class IcmpEngine {
  /** Engine statistics (counters only grow). */
  readonly stats: EngineStats = { sent: 0, received: 0, unmatched: 0, deferred: 0, late: 0 };
  private readonly token = randomBytes(8);
  private readonly sockets: FamilySockets;
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
   */
  constructor(
    private readonly prefer: SocketKind | "auto" = "auto",
    private readonly rcvbufBytes = 8 << 20,
    readonly clock: Clock = SYSTEM_CLOCK,
  ) {
    this.sockets = new FamilySockets((v6) => new IcmpSocket(v6, this.rcvbufBytes, this.prefer, "replies", this.clock));
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
   * Resolves when every request is answered or the last one timed out; never rejects for
   * network errors (they are in `error`).
   * @throws IcmpUnavailableError (synchronously) when the family has no socket; Error for a bad literal
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
    const sock = this.socket(v6);
    if (this.nextSeq.size >= MAX_DESTS && !this.nextSeq.has(destKey)) this.nextSeq.clear(); // counters restart at random values
    const seqBase = opts.firstSequence ?? this.nextSeq.get(destKey) ?? randomInt(0x10000);
    this.nextSeq.set(destKey, (seqBase + opts.count) & 0xffff);
    return new Promise((done) => {
      const now = this.clock.monotonicNs();
      const times = this.free.get(opts.count)?.pop() ?? new Float64Array(2 * opts.count);
      const rttNs = times.subarray(opts.count).fill(NaN);
      const round: Round = {
        v6, sockaddr, destKey, opts,
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

  /** Closes both sockets; pending rounds finish with what they have. */
  close(): void {
    for (const list of [...this.byDest.values()]) for (const r of [...list]) this.finish(r);
    this.sendQueue.clear();
    this.deadlines.clear();
    this.sockets.close();
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
  }

  /** Sends the round's next request and requeues it. @returns false when the send must be retried */
  private sendNext(r: Round): boolean {
    const sock = this.socket(r.v6);
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
      if (!r.error) r.error = `sendto: ${strerror(-t)}`;
      r.sentAt[index] = NaN;
      r.lastSendNs = this.clock.monotonicNs();
    } else {
      r.sentAt[index] = t;
      r.lastSendNs = t;
    }
    const intervalNs = r.opts.intervalMs * 1e6;
    if (r.sent < r.opts.count) {
      r.dueNs = Math.max(r.startNs + r.sent * intervalNs, r.lastSendNs + intervalNs / 2);
      this.sendQueue.push(r);
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
    if (r.received === r.opts.count) this.finish(r);
  }

  private finish(r: Round): void {
    r.finished = true;
    this.active--;
    const list = this.byDest.get(r.destKey)!;
    if (list.length === 1) this.byDest.delete(r.destKey);
    else list.splice(list.indexOf(r), 1);
    r.done(new RoundOutcome(r));
  }
}

/**
 * A finished round's EchoOutcome. The RTT arrays are getters on the prototype, built on demand
 * (tests, fixtures): an agent at 10,000 targets reads `rttNs` only, and per-round closures were
 * garbage 10,000 times an interval.
 */
class RoundOutcome implements EchoOutcome {
  readonly sent: number;
  readonly received: number;
  readonly duplicates: number;
  readonly corrupted: number;
  readonly rttNs: Float64Array;
  readonly firstSequence: number;
  readonly error: string;
  /** The round's timing buffer until release() takes it back. */
  [TIMES]?: Float64Array;

  constructor(r: Round) {
    this.sent = r.sent;
    this.received = r.received;
    this.duplicates = r.duplicates;
    this.corrupted = r.corrupted;
    this.rttNs = r.rttNs.subarray(0, r.sent);
    this.firstSequence = r.seqBase;
    this.error = r.error;
    this[TIMES] = r.times;
  }

  get rttsSeconds(): number[] {
    const out: number[] = [];
    for (const v of this.rttNs) if (!Number.isNaN(v)) out.push(v / 1e9);
    return out;
  }

  get requestRttsSeconds(): number[] {
    return Array.from(this.rttNs, (v) => v / 1e9);
  }

  /** JSON form (fixtures print outcomes): the fields and both RTT arrays, seconds; rttNs as an array. */
  toJSON(): Omit<EchoOutcome, "rttNs"> & { rttNs: number[] } {
    const { sent, received, duplicates, corrupted, firstSequence, error } = this;
    return { sent, received, duplicates, corrupted, firstSequence, error, rttNs: Array.from(this.rttNs), rttsSeconds: this.rttsSeconds, requestRttsSeconds: this.requestRttsSeconds };
  }
}


function u32(b: Uint8Array, off: number): number {
  return ((b[off]! << 24) | (b[off + 1]! << 16) | (b[off + 2]! << 8) | b[off + 3]!) >>> 0;
}

/** Hex text of `len` bytes of `b` from `off` (the IPv6 demux key). */
function hex(b: Uint8Array, off: number, len: number): string {
  let s = "";
  for (let i = off; i < off + len; i++) s += (b[i]! < 16 ? "0" : "") + b[i]!.toString(16);
  return s;
}
