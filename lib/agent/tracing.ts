/**
 * Path traces on anomaly (docs/probes.md "Path trace"): when an ICMP round fails (the target enters
 * or stays in error state) the agent traces the path to it, at most once per target per
 * -agent.trace.interval, a few traces at a time, and pushes each finished trace with the next batch.
 * When a udp / tcp flow turns lossy (lib/probes/flow/lossy.ts) or its target fails, the agent
 * traces that one flow (a Paris traceroute of its 5-tuple, lib/probes/flow/trace.ts) under the
 * same rule, sharing the concurrency and the queue.
 */
import { timestampMs } from "@bufbuild/protobuf/wkt";
import pLimit from "p-limit";
import type { Logger } from "../log.ts";
import { FlowTraceProber, type FlowTraceRequest } from "../probes/flow/path.ts";
import { FlowTracer } from "../probes/flow/trace.ts";
import { PathTraceProber } from "../probes/icmp/path.ts";
import type { TraceOptions } from "../probes/icmp/trace.ts";
import type { IcmpTarget } from "../rpc/gen/probermesh/v1/icmp_pb.ts";
import type { PathTrace } from "../rpc/gen/probermesh/v1/probermesh_pb.ts";

/** Traces running at once: a region-wide outage starts one per target, each ~maxHops × probes packets. */
export const TRACE_CONCURRENCY = 4;
/** Traces waiting beyond the running ones; more are skipped (and logged) until the queue drains. */
export const TRACE_QUEUE = 256;

/** Starts and rate-limits the agent's path traces. */
export class Tracing {
  private readonly prober: PathTraceProber;
  private readonly flowProber: FlowTraceProber;
  private readonly flowReady: boolean;
  private readonly limit = pLimit(TRACE_CONCURRENCY);
  /** When the last trace of each job key was requested, unix ms (pruned of entries older than the interval). */
  private readonly last = new Map<string, number>();
  private readonly ready: boolean;
  /** Traces skipped for a full queue since the last warning, and when that was (one warning a minute at most). */
  private skipped = 0;
  private lastSkipLogMs = 0;

  /**
   * @param opts -agent.trace.* (intervalMs: minimum time between two traces of one target, ms)
   * @param deliver receives each finished trace (the agent adds it to the current batch)
   * @param meshKey the current mesh key (HeartbeatResponse.mesh_key), which udp flow traces tag
   *   their probes with so that the destination's responder answers; undefined until known
   */
  constructor(
    private readonly opts: { intervalMs: number } & Partial<TraceOptions>,
    private readonly log: Logger,
    private readonly deliver: (t: PathTrace) => void,
    meshKey?: () => Uint8Array | undefined,
  ) {
    this.prober = new PathTraceProber(opts);
    const st = this.prober.status();
    this.ready = st.ready;
    if (st.ready) log.info(st.message);
    else log.warn(`${st.message}; re-probing goes on`);
    const { payloadSize: _, ...flowOpts } = opts;
    this.flowProber = new FlowTraceProber(flowOpts, new FlowTracer(meshKey));
    const fst = this.flowProber.status();
    this.flowReady = fst.ready;
    if (fst.ready) log.info(fst.message);
    else log.warn(`${fst.message}; flow probing goes on`);
  }

  /** A round of the target failed: trace it unless it was traced within the interval. */
  request(key: string, target: IcmpTarget): void {
    const now = Date.now();
    if (!this.ready || !this.admit(key, now)) return;
    void this.limit(async () => this.finished(key, now, await this.prober.trace(target, "error_state")))
      .catch((e) => this.log.error({ target: key, err: String(e) }, "path trace crashed"));
  }

  /**
   * A flow turned lossy (reason "flow_lossy") or its target entered error state: trace that flow
   * (its exact 5-tuple) unless `key` was traced within the interval. `key` names the flow (the
   * caller's, e.g. target and source port); flow keys never collide with request()'s.
   */
  requestFlow(key: string, f: FlowTraceRequest): void {
    const now = Date.now();
    if (!this.flowReady || !this.admit(`flow\u0000${key}`, now)) return;
    void this.limit(async () => this.finished(key, now, await this.flowProber.trace(f)))
      .catch((e) => this.log.error({ target: key, err: String(e) }, "flow trace crashed"));
  }

  /** Logs and delivers a finished trace requested at `requestedMs` (unix ms). */
  private finished(key: string, requestedMs: number, t: PathTrace): void {
    this.log.info(
      {
        target: key, ...(t.kind && t.kind !== "icmp" ? { kind: t.kind, sport: t.sourcePort, dport: t.destinationPort } : {}),
        // requested: the failed round's end (what the interval is counted from); started: after any queue.
        requested: new Date(requestedMs).toISOString(), started: t.time ? new Date(timestampMs(t.time)).toISOString() : null, reached: t.reached,
        hops: t.hops.map((h) => `${h.ttl}:${h.address || "?"}:${h.received}/${h.sent}`).join(" "), ...(t.error ? { err: t.error } : {}),
      },
      t.kind && t.kind !== "icmp" ? "flow traced" : "path traced",
    );
    this.deliver(t);
  }

  /** The once-per-interval-per-key rule and the queue bound: true when a trace of `key` may start now (and it is noted). */
  private admit(key: string, now: number): boolean {
    const prev = this.last.get(key);
    if (prev !== undefined && now - prev < this.opts.intervalMs) return false;
    if (this.limit.pendingCount >= TRACE_QUEUE) {
      this.skipped++;
      if (now - this.lastSkipLogMs >= 60_000) {
        this.log.warn({ skipped: this.skipped, queued: this.limit.pendingCount }, "path traces skipped: too many queued (a wide outage); they are tried again on the next failed rounds");
        this.lastSkipLogMs = now;
        this.skipped = 0;
      }
      return false;
    }
    if (this.last.size > 4 * TRACE_QUEUE) for (const [k, t] of this.last) if (now - t >= this.opts.intervalMs) this.last.delete(k);
    this.last.set(key, now);
    return true;
  }

  close(): void {
    this.limit.clearQueue();
    this.prober.close();
    this.flowProber.close();
  }
}
