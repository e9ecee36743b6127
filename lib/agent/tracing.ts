/**
 * Path traces on anomaly (docs/probes.md "Path trace"): when an ICMP round fails (the target enters
 * or stays in error state) the agent traces the path to it, at most once per target per
 * -agent.trace.interval, a few traces at a time, and pushes each finished trace with the next batch.
 */
import { timestampMs } from "@bufbuild/protobuf/wkt";
import pLimit from "p-limit";
import type { Logger } from "../log.ts";
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
   */
  constructor(
    private readonly opts: { intervalMs: number } & Partial<TraceOptions>,
    private readonly log: Logger,
    private readonly deliver: (t: PathTrace) => void,
  ) {
    this.prober = new PathTraceProber(opts);
    const st = this.prober.status();
    this.ready = st.ready;
    if (st.ready) log.info(st.message);
    else log.warn(`${st.message}; re-probing goes on`);
  }

  /** A round of the target failed: trace it unless it was traced within the interval. */
  request(key: string, target: IcmpTarget): void {
    if (!this.ready) return;
    const now = Date.now();
    const prev = this.last.get(key);
    if (prev !== undefined && now - prev < this.opts.intervalMs) return;
    if (this.limit.pendingCount >= TRACE_QUEUE) {
      this.skipped++;
      if (now - this.lastSkipLogMs >= 60_000) {
        this.log.warn({ skipped: this.skipped, queued: this.limit.pendingCount }, "path traces skipped: too many queued (a wide outage); they are tried again on the next failed rounds");
        this.lastSkipLogMs = now;
        this.skipped = 0;
      }
      return;
    }
    if (this.last.size > 4 * TRACE_QUEUE) for (const [k, t] of this.last) if (now - t >= this.opts.intervalMs) this.last.delete(k);
    this.last.set(key, now);
    void this.limit(async () => {
      const t = await this.prober.trace(target, "error_state");
      this.log.info(
        // requested: the failed round's end (what the interval is counted from); started: after any queue.
        { target: key, requested: new Date(now).toISOString(), started: t.time ? new Date(timestampMs(t.time)).toISOString() : null, reached: t.reached, hops: t.hops.map((h) => `${h.ttl}:${h.address || "?"}:${h.received}/${h.sent}`).join(" "), ...(t.error ? { err: t.error } : {}) },
        "path traced",
      );
      this.deliver(t);
    }).catch((e) => this.log.error({ target: key, err: String(e) }, "path trace crashed"));
  }

  close(): void {
    this.limit.clearQueue();
    this.prober.close();
  }
}
