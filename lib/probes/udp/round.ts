/**
 * One udp round's bookkeeping (prober.ts runs it): its probes in send order, per-flow counts, and
 * the summary into a UdpResult.
 *
 * RTT of a probe (NetNORAD): kernel receive time − send time − the responder's dwell (its send
 * time − its kernel receive time, both from the tagged reply), clamped at 0. A reply to a probe
 * already answered is a duplicate; a reply for a probe sent before one already answered on the
 * same flow is reordered (RFC 4737 section 3: a packet whose sequence is below the highest one
 * received so far).
 *
 * One-way loss of the requests (oneway.ts): each new reply's reflector count closes a span of its
 * flow's FlowSequence (which may have begun in an earlier round); the round sums the spans its
 * replies closed into forward_sent / forward_lost.
 */
import { create } from "@bufbuild/protobuf";
import { Moments } from "../../aggregation/moments.ts";
import { FlowStatsSchema } from "../../rpc/gen/probermesh/v1/flow_pb.ts";
import type { UdpResult } from "../../rpc/gen/probermesh/v1/udp_pb.ts";
import { RTT_BUCKETS, rttBucket } from "../icmp/buckets.ts";
import type { FlowSequence } from "./oneway.ts";

/** A round's settings with defaults applied; durations in milliseconds. */
export interface UdpRoundOptions {
  count: number;
  intervalMs: number;
  payloadSize: number;
  timeoutMs: number;
  flows: number;
  dscp: number;
}

/** One flow of a round. */
export interface RoundFlow {
  port: number;
  /** The socket's destination sockaddr, or null when the flow's port could not be bound. */
  sockaddr: Uint8Array | null;
  /** The (flow port, destination)'s sequences and newest reply, shared across rounds. */
  sequence: FlowSequence;
  sent: number;
  received: number;
  duplicates: number;
  reordered: number;
  /** Highest per-flow probe index answered so far (-1: none). */
  highest: number;
  rtt: Moments;
}

/** One probe of a round, in send order. */
export interface RoundProbe {
  flow: number;
  /** Its index among its flow's probes (the order RFC 4737 compares). */
  k: number;
  sequence: number;
  /** Monotonic send time, ns; NaN when it could not be sent. */
  txNs: number;
  answered: boolean;
  /** Its key in the prober's pending map ("" when not pending). */
  key: string;
}

/** A round in flight. */
export class UdpRound {
  readonly probes: RoundProbe[] = [];
  /** Index of the next probe to send, and when (monotonic ns). */
  nextSend = 0;
  nextSendAtNs = 0;
  /** Probes before this index have passed their deadline (they expire in send order). */
  expired = 0;
  answered = 0;
  /** Probes that could not be sent (counted as sent and lost, never answered). */
  unsent = 0;
  readonly rtt = new Moments();
  readonly buckets = new Array<number>(RTT_BUCKETS).fill(0);
  dwellSumNs = 0;
  /** Requests in the spans this round's replies closed, and those of them that never arrived (oneway.ts). */
  forwardSent = 0;
  forwardLost = 0;
  errors: string[] = [];
  done = false;

  /**
   * @param flows the flows (in port order) with their sockets' destinations
   * @param dstIp the responder's IP as replies show it (IPv4 dotted, IPv6 RFC 5952)
   */
  constructor(
    readonly opts: UdpRoundOptions, readonly flows: RoundFlow[], readonly dstIp: string, readonly dstPort: number,
    /** The probe buffer (payload_size bytes, rewritten per probe) and the key probes are tagged with. */
    readonly buf: Uint8Array, readonly key: Uint8Array, readonly finish: () => void,
  ) {}

  /** Flows that can send (their port is bound). */
  get usable(): RoundFlow[] {
    return this.flows.filter((f) => f.sockaddr !== null);
  }

  /** All sent, and every probe answered or past its deadline. */
  get complete(): boolean {
    return this.nextSend >= this.probes.length && (this.expired >= this.probes.length || this.answered + this.unsent >= this.probes.length);
  }

  /**
   * Records a verified reply to probe `i` received at `rxNs` (monotonic ns) whose responder held
   * it `dwellNs` and whose reflector count is `count` (0: the responder does not count).
   */
  reply(i: number, rxNs: number, dwellNs: number, count = 0): void {
    const p = this.probes[i]!;
    const f = this.flows[p.flow]!;
    if (p.answered) {
      f.duplicates++;
      return;
    }
    p.answered = true;
    this.answered++;
    f.received++;
    if (p.k < f.highest) f.reordered++;
    else f.highest = p.k;
    const span = f.sequence.reply(p.sequence, count);
    this.forwardSent += span.sent;
    this.forwardLost += span.lost;
    const dwell = Math.max(0, dwellNs);
    const rtt = Math.max(0, rxNs - p.txNs - dwell) / 1e9;
    this.dwellSumNs += dwell;
    f.rtt.add(rtt);
    this.rtt.add(rtt);
    this.buckets[rttBucket(rtt)]!++;
  }

  /** Fills `result`'s totals, statistics and flows. */
  summarise(result: UdpResult): void {
    const s = this.rtt.n > 0 ? this.rtt.stats() : { min: 0, mean: 0, max: 0, stddev: 0 };
    let sent = 0, duplicates = 0, reordered = 0;
    for (const f of this.flows) {
      sent += f.sent;
      duplicates += f.duplicates;
      reordered += f.reordered;
    }
    Object.assign(result, {
      sent, received: this.answered, duplicates, reordered,
      minSeconds: s.min, meanSeconds: s.mean, maxSeconds: s.max, stddevSeconds: s.stddev,
      rttBucketCounts: this.buckets, dwellMeanSeconds: this.answered > 0 ? this.dwellSumNs / this.answered / 1e9 : 0,
      dscp: this.opts.dscp, forwardSent: this.forwardSent, forwardLost: this.forwardLost,
      flows: this.flows.map((f) => create(FlowStatsSchema, {
        sourcePort: f.port, sent: f.sent, received: f.received, duplicates: f.duplicates, reordered: f.reordered,
        rttMeanSeconds: f.rtt.n > 0 ? f.rtt.mean : 0, rttMinSeconds: f.rtt.n > 0 ? f.rtt.min : 0, rttMaxSeconds: f.rtt.n > 0 ? f.rtt.max : 0,
      })),
    });
    if (this.errors.length > 0) result.error = this.errors.join("; ");
  }
}

/**
 * "flow ports 40100-40102, 40107 cannot be bound: udp port 40100 is in use ...": the ports in
 * consecutive runs and the first reason, so the text is bounded by the causes, not by the flows.
 */
export function portErrors(failed: { port: number; message: string }[]): string {
  if (failed.length === 0) return "";
  const runs: string[] = [];
  for (let i = 0; i < failed.length; ) {
    let j = i;
    while (j + 1 < failed.length && failed[j + 1]!.port === failed[j]!.port + 1) j++;
    runs.push(i === j ? String(failed[i]!.port) : `${failed[i]!.port}-${failed[j]!.port}`);
    i = j + 1;
  }
  const shown = runs.length > 8 ? [...runs.slice(0, 8), `+${runs.length - 8} more`] : runs;
  return `flow port${failed.length > 1 ? "s" : ""} ${shown.join(", ")} cannot be bound: ${failed[0]!.message}`;
}
