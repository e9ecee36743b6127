/**
 * The ICMP echo engine: one shared socket per address family, one receive loop, replies
 * demultiplexed by (source address, sequence) and checked against the engine's identifier and
 * token, as liboping / go-fastping do instead of a socket per host.
 *
 * Scheduling: every echo request of every round sits in one min-heap by due time; a single tick
 * (every ~1 ms while work is pending) sends what is due, drains the sockets, and finishes rounds
 * whose deadline passed. Accuracy does not depend on the tick: send times are taken around
 * sendto() and receive times are kernel timestamps (see socket.ts).
 */
import { randomBytes } from "node:crypto";
import { isIPv6 } from "node:net";
import { EAGAIN, ENOBUFS, encodeSockaddr, strerror } from "./libc.ts";
import { ECHO_HEADER_LEN, parseEchoReply, writeEchoRequest } from "./packet.ts";
import { IcmpSocket, type Datagram, type SocketKind } from "./socket.ts";

/** Parameters of one echo round; durations in milliseconds. */
export interface EchoOptions {
  count: number;
  intervalMs: number;
  payloadSize: number;
  /** Per-packet timeout: a reply later than this after its request counts as lost. */
  timeoutMs: number;
}

/** Outcome of one echo round. RTTs in seconds. */
export interface EchoOutcome {
  sent: number;
  received: number;
  /** Extra replies for requests already answered (RFC 792 allows duplicates; not counted as received). */
  duplicates: number;
  /** Replies whose payload or checksum did not match what was sent (ignored). */
  corrupted: number;
  /** RTT of each answered request in send order, seconds. */
  rttsSeconds: number[];
  /** First send error, "" if none. */
  error: string;
}

interface Round {
  v6: boolean;
  sockaddr: Uint8Array;
  addrKey: string;
  opts: EchoOptions;
  packet: Uint8Array;
  seqBase: number;
  sentAt: Float64Array;
  rttNs: Float64Array;
  sent: number;
  received: number;
  duplicates: number;
  corrupted: number;
  error: string;
  lastSendNs: number;
  done: (o: EchoOutcome) => void;
}

interface Scheduled {
  dueNs: number;
  round: Round;
  index: number;
}

/** Binary min-heap of scheduled sends by due time. */
class SendQueue {
  private items: Scheduled[] = [];
  get size(): number {
    return this.items.length;
  }
  peek(): Scheduled | undefined {
    return this.items[0];
  }
  push(s: Scheduled): void {
    const a = this.items;
    a.push(s);
    for (let i = a.length - 1; i > 0; ) {
      const p = (i - 1) >> 1;
      if (a[p]!.dueNs <= a[i]!.dueNs) break;
      [a[p], a[i]] = [a[i]!, a[p]!];
      i = p;
    }
  }
  pop(): Scheduled | undefined {
    const a = this.items;
    const top = a[0];
    const last = a.pop();
    if (a.length > 0 && last) {
      a[0] = last;
      for (let i = 0; ; ) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < a.length && a[l]!.dueNs < a[m]!.dueNs) m = l;
        if (r < a.length && a[r]!.dueNs < a[m]!.dueNs) m = r;
        if (m === i) break;
        [a[m], a[i]] = [a[i]!, a[m]!];
        i = m;
      }
    }
    return top;
  }
}

/** Statistics of the engine since start, for debugging and the benchmark. */
export interface EngineStats {
  sent: number;
  received: number;
  /** Echo replies with our token but no pending request (late after the round ended). */
  unmatched: number;
  /** Send attempts deferred because the socket buffer was full. */
  deferred: number;
}

/** Shared ICMP engine; create one per agent. */
export class IcmpEngine {
  /** Engine statistics (counters only grow). */
  readonly stats: EngineStats = { sent: 0, received: 0, unmatched: 0, deferred: 0 };
  private readonly token = randomBytes(8);
  private sockets: [IcmpSocket | Error | undefined, IcmpSocket | Error | undefined] = [undefined, undefined];
  private readonly queue = new SendQueue();
  /** Pending requests by `${addrKey}/${seq}`. */
  private readonly pending = new Map<string, { round: Round; index: number }>();
  /** Next sequence number per destination, so concurrent rounds to one address never collide. */
  private readonly nextSeq = new Map<string, number>();
  private readonly active = new Set<Round>();
  private timer: ReturnType<typeof setTimeout> | undefined;

  /** @param prefer force a socket kind (tests); "auto" tries a ping socket, then a raw one. */
  constructor(private readonly prefer: SocketKind | "auto" = "auto") {}

  /**
   * Opens (once) and returns the socket for a family.
   * @throws IcmpUnavailableError when neither a ping nor a raw socket is allowed
   */
  socket(v6: boolean): IcmpSocket {
    const i = v6 ? 1 : 0;
    let s = this.sockets[i];
    if (s === undefined) {
      try {
        s = new IcmpSocket(v6, 8 << 20, this.prefer);
      } catch (e) {
        s = e as Error;
      }
      this.sockets[i] = s;
    }
    if (s instanceof Error) throw s;
    return s;
  }

  /** Which kind of socket a family uses, or the reason none is available. */
  describe(v6: boolean): { kind: SocketKind; identifier: number } | { error: string } {
    try {
      const s = this.socket(v6);
      return { kind: s.kind, identifier: s.identifier };
    } catch (e) {
      return { error: (e as Error).message };
    }
  }

  /**
   * Runs one round: `count` echo requests to `ip` (an IP literal), `intervalMs` apart.
   * Resolves when every request is answered or the last one timed out; never rejects for
   * network errors (they are in `error`), rejects with IcmpUnavailableError when no socket.
   */
  echo(ip: string, opts: EchoOptions): Promise<EchoOutcome> {
    const v6 = isIPv6(ip);
    const sock = this.socket(v6);
    const addrKey = Buffer.from(encodeSockaddr(ip).subarray(v6 ? 8 : 4, v6 ? 24 : 8)).toString("hex");
    const seqBase = this.nextSeq.get(addrKey) ?? 0;
    this.nextSeq.set(addrKey, (seqBase + opts.count) & 0xffff);
    return new Promise((done) => {
      const round: Round = {
        v6, sockaddr: encodeSockaddr(ip), addrKey, opts,
        packet: new Uint8Array(ECHO_HEADER_LEN + opts.payloadSize),
        seqBase,
        sentAt: new Float64Array(opts.count).fill(NaN),
        rttNs: new Float64Array(opts.count).fill(NaN),
        sent: 0, received: 0, duplicates: 0, corrupted: 0, error: "", lastSendNs: 0, done,
      };
      this.active.add(round);
      const now = sock.nowNs();
      for (let i = 0; i < opts.count; i++) this.queue.push({ dueNs: now + i * opts.intervalMs * 1e6, round, index: i });
      this.schedule(0);
    });
  }

  /** Closes both sockets; pending rounds finish with what they have. */
  close(): void {
    for (const r of [...this.active]) this.finish(r);
    for (const s of this.sockets) if (s instanceof IcmpSocket) s.close();
    this.sockets = [undefined, undefined];
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  private schedule(ms: number): void {
    if (this.timer === undefined) this.timer = setTimeout(() => this.tick(), ms);
  }

  private tick(): void {
    this.timer = undefined;
    const s4 = this.sockets[0] instanceof IcmpSocket ? this.sockets[0] : undefined;
    const s6 = this.sockets[1] instanceof IcmpSocket ? this.sockets[1] : undefined;
    const clock = (s4 ?? s6)!;
    // Receive first so that replies already queued are matched before their rounds expire.
    this.drainAll(s4, s6);
    let now = clock.nowNs();
    for (let s = this.queue.peek(); s && s.dueNs <= now; s = this.queue.peek()) {
      this.queue.pop();
      if (!this.sendOne(s)) {
        this.queue.push({ ...s, dueNs: now + 200_000 }); // buffer full: retry in 0.2 ms, no false loss
        this.stats.deferred++;
        break;
      }
      // Drain between bursts so replies never pile up behind a long send burst.
      if ((this.stats.sent & 63) === 0) this.drainAll(s4, s6);
      now = clock.nowNs();
    }
    this.drainAll(s4, s6);
    now = clock.nowNs();
    for (const r of this.active) {
      if (r.sent === r.opts.count && (r.received === r.sent || now - r.lastSendNs > r.opts.timeoutMs * 1e6)) this.finish(r);
    }
    if (this.active.size > 0) {
      const next = this.queue.peek();
      const untilNext = next ? Math.max(0, (next.dueNs - now) / 1e6) : 1;
      this.schedule(Math.min(1, untilNext));
    }
  }

  private drainAll(s4: IcmpSocket | undefined, s6: IcmpSocket | undefined): void {
    if (s4) s4.drain((d) => this.onDatagram(s4, d));
    if (s6) s6.drain((d) => this.onDatagram(s6, d));
  }

  /** @returns false when the socket buffer is full and the send must be retried. */
  private sendOne(s: Scheduled): boolean {
    const r = s.round;
    const sock = this.socket(r.v6);
    const seq = (r.seqBase + s.index) & 0xffff;
    writeEchoRequest(r.packet, r.v6, sock.identifier, seq, this.token);
    const t = sock.send(r.packet, r.sockaddr);
    if (t === -EAGAIN || t === -ENOBUFS) return false;
    r.sent++;
    this.stats.sent++;
    if (t < 0) {
      if (!r.error) r.error = `sendto: ${strerror(-t)}`;
      r.lastSendNs = sock.nowNs();
      return true;
    }
    r.sentAt[s.index] = t;
    r.lastSendNs = t;
    this.pending.set(`${r.addrKey}/${seq}`, { round: r, index: s.index });
    return true;
  }

  private onDatagram(sock: IcmpSocket, d: Datagram): void {
    const reply = parseEchoReply(d.buf, d.icmpOffset, d.end, sock.v6, this.token);
    if (!reply) return;
    if (sock.kind === "raw" && reply.identifier !== sock.identifier) return;
    const key = `${Buffer.from(d.source).toString("hex")}/${reply.sequence}`;
    const p = this.pending.get(key);
    if (!p) {
      this.stats.unmatched++;
      return;
    }
    const r = p.round;
    if (!reply.ok || reply.payloadSize !== r.opts.payloadSize) {
      r.corrupted++;
      return;
    }
    const rtt = d.rxNs - r.sentAt[p.index]!;
    if (!Number.isNaN(r.rttNs[p.index]!)) {
      r.duplicates++;
      return;
    }
    if (rtt > r.opts.timeoutMs * 1e6) return; // too late: stays lost
    r.rttNs[p.index] = Math.max(rtt, 0);
    r.received++;
    this.stats.received++;
  }

  private finish(r: Round): void {
    this.active.delete(r);
    for (let i = 0; i < r.opts.count; i++) this.pending.delete(`${r.addrKey}/${(r.seqBase + i) & 0xffff}`);
    const rttsSeconds: number[] = [];
    for (const v of r.rttNs) if (!Number.isNaN(v)) rttsSeconds.push(v / 1e9);
    r.done({ sent: r.sent, received: r.received, duplicates: r.duplicates, corrupted: r.corrupted, rttsSeconds, error: r.error });
  }
}

