/**
 * The bookkeeping of one traceroute, whatever its probes are: a send time and at most one answer
 * per probe, probe index i = cycle × maxHops + ttl − 1 (one TTL cycle after another, as mtr and
 * the ICMP tracer send them), and the per-TTL summary that becomes a PathTrace's hops.
 *
 * Shared by the ICMP tracer (lib/probes/icmp/trace.ts) and the flow tracer (lib/probes/flow/), so
 * both summarise and fill a PathTrace message the same way; `hopMessages` is that fill.
 */
import { create } from "@bufbuild/protobuf";
import { Moments } from "../aggregation/moments.ts";
import { TraceHopSchema, type PathTrace, type TraceHop } from "../rpc/gen/probermesh/v1/probermesh_pb.ts";
import { resolveHost, roundErrorText } from "./resolve.ts";

/** What came back for one TTL. RTTs in seconds. */
export interface HopOutcome {
  ttl: number;
  /** The address that answered most often ("" when none did). */
  address: string;
  sent: number;
  received: number;
  rttsSeconds: number[];
  /** Other addresses that answered at this TTL (load-balanced paths). */
  otherAddresses: string[];
}

/** A finished trace. */
export interface TraceOutcome {
  hops: HopOutcome[];
  /** True when the destination itself answered (the last hop is the destination). */
  reached: boolean;
  /** "" on success; the first send error otherwise. */
  error: string;
}

/** Other addresses kept per hop (load-balanced paths). */
export const MAX_OTHER_ADDRESSES = 4;

/** Sends and answers of one trace. */
export class ProbeBook {
  /** Send time per probe index, monotonic ns; NaN: not sent. */
  readonly sentAt: Float64Array;
  /** Answer per probe index: responder address, RTT ns. */
  readonly answers: ({ from: string; rttNs: number } | undefined)[];
  /** Lowest TTL at which the destination (or a Destination Unreachable) answered; Infinity until then. */
  lastTtl = Infinity;
  /** Did the destination itself answer (a reply, a SYN-ACK / RST, or its Port Unreachable)? */
  reached = false;
  /** "" or the first send error. */
  error = "";

  /**
   * @param dest the destination's canonical address text
   * @param maxHops TTLs per cycle, probes cycles
   * @param maxRttNs answers later than this after their probe are ignored, ns
   */
  constructor(readonly dest: string, readonly maxHops: number, readonly probes: number, private readonly maxRttNs: number) {
    const n = maxHops * probes;
    this.sentAt = new Float64Array(n).fill(NaN);
    this.answers = new Array(n);
  }

  /** Number of probe indexes. */
  get size(): number {
    return this.sentAt.length;
  }

  /** Probe index of `ttl` in `cycle`. */
  index(cycle: number, ttl: number): number {
    return cycle * this.maxHops + ttl - 1;
  }

  /** TTL of probe index `i`. */
  ttlOf(i: number): number {
    return (i % this.maxHops) + 1;
  }

  /**
   * Files an answer to probe `i` from `from` received at `rxNs` (monotonic ns); `final`: nothing
   * lies beyond this TTL (the destination, or a Destination Unreachable). The first answer per
   * probe counts; answers to unsent probes, or later than the trace could wait, are ignored.
   */
  record(i: number, from: string, rxNs: number, final: boolean): void {
    if (!(i >= 0 && i < this.sentAt.length) || Number.isNaN(this.sentAt[i]!) || this.answers[i]) return;
    const rttNs = rxNs - this.sentAt[i]!;
    if (!(rttNs <= this.maxRttNs)) return;
    this.answers[i] = { from, rttNs: Math.max(rttNs, 0) };
    if (from === this.dest) this.reached = true;
    if (final) this.lastTtl = Math.min(this.lastTtl, this.ttlOf(i));
  }

  /** Per-TTL hops: up to the destination, else up to one TTL past the last answer. RTTs in seconds. */
  summary(): TraceOutcome {
    const { maxHops, probes } = this;
    let last = 0;
    for (let i = 0; i < this.answers.length; i++) if (this.answers[i]) last = Math.max(last, this.ttlOf(i));
    const top = this.lastTtl !== Infinity ? this.lastTtl : Math.min(maxHops, last + 1);
    const hops: HopOutcome[] = [];
    for (let ttl = 1; ttl <= top; ttl++) {
      const by = new Map<string, number>();
      const rtts: number[] = [];
      let sent = 0;
      for (let c = 0; c < probes; c++) {
        const i = this.index(c, ttl);
        if (Number.isNaN(this.sentAt[i]!)) continue;
        sent++;
        const a = this.answers[i];
        if (!a) continue;
        rtts.push(a.rttNs / 1e9);
        by.set(a.from, (by.get(a.from) ?? 0) + 1);
      }
      const ranked = [...by].sort((a, b) => b[1] - a[1]).map(([addr]) => addr);
      hops.push({ ttl, address: ranked[0] ?? "", sent, received: rtts.length, rttsSeconds: rtts, otherAddresses: ranked.slice(1, 1 + MAX_OTHER_ADDRESSES) });
    }
    return { hops, reached: this.reached && this.lastTtl !== Infinity, error: this.error };
  }
}

/** PathTrace.hops of a trace's hops: per TTL the address, counts and RTT statistics in seconds. */
export function hopMessages(hops: readonly HopOutcome[]): TraceHop[] {
  return hops.map((h) => {
    const s = Moments.of(h.rttsSeconds);
    return create(TraceHopSchema, {
      ttl: h.ttl, address: h.address, sent: h.sent, received: h.received, otherAddresses: h.otherAddresses,
      rttMeanSeconds: s.mean, rttMinSeconds: s.min, rttMaxSeconds: s.max, rttStddevSeconds: s.stddev,
    });
  });
}

/**
 * Resolves `host`, runs `trace` on its IP and fills `out` with resolved_ip, reached, error, hops
 * and duration_seconds (wall time from `startMs`, performance.now() milliseconds). Never rejects:
 * a failure to resolve or to trace is PathTrace.error. Shared by the ICMP and the flow tracers.
 */
export async function runTrace(out: PathTrace, host: string, startMs: number, trace: (ip: string) => Promise<TraceOutcome>): Promise<PathTrace> {
  try {
    out.resolvedIp = (await resolveHost(host)).ip;
    const o = await trace(out.resolvedIp);
    out.reached = o.reached;
    out.error = o.error;
    out.hops = hopMessages(o.hops);
  } catch (e) {
    out.error = roundErrorText(out.resolvedIp, e);
  }
  out.durationSeconds = (performance.now() - startMs) / 1000;
  return out;
}
