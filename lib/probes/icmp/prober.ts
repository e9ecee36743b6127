/**
 * The ICMP kind's agent half (lib/probes/kind.ts): resolve (names only), then one echo round on
 * the shared IcmpEngine (RFC 792 / RFC 4443 echo; docs/probes.md "ICMP"), summarised into an
 * IcmpResult: sent, received, per-packet RTTs and their min/mean/max/stddev, all in seconds.
 */
import { create } from "@bufbuild/protobuf";
import { durationMs, timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Moments } from "../../aggregation/moments.ts";
import { IcmpResultSchema, type IcmpModule, type IcmpResult, type IcmpTarget } from "../../rpc/gen/probermesh/v1/icmp_pb.ts";
import type { Prober, ProberStatus } from "../kind.ts";
import { resolveHostWithin, roundErrorText } from "../resolve.ts";
import { RTT_BUCKETS, rttBucket } from "./buckets.ts";
import { ICMP_DEFAULTS } from "./defaults.ts";
import { IcmpEngine, type EchoOptions } from "./engine.ts";

/** Echo options per module object (the agent shares one module among targets with equal ones). */
const optionsOf = new WeakMap<object, EchoOptions>();
const DEFAULT_OPTIONS: EchoOptions = {
  count: ICMP_DEFAULTS.packetCount, intervalMs: ICMP_DEFAULTS.intervalMs, payloadSize: ICMP_DEFAULTS.payloadSize, timeoutMs: ICMP_DEFAULTS.timeoutMs,
};

/** A module's echo options with the defaults filled in (durations in milliseconds); cached per module object. */
export function echoOptions(m: IcmpModule | undefined): EchoOptions {
  if (!m) return DEFAULT_OPTIONS;
  let o = optionsOf.get(m);
  if (!o) {
    o = {
      count: m.packetCount || ICMP_DEFAULTS.packetCount,
      intervalMs: m.interval ? durationMs(m.interval) : ICMP_DEFAULTS.intervalMs,
      payloadSize: m.payloadSize || ICMP_DEFAULTS.payloadSize,
      timeoutMs: m.timeout ? durationMs(m.timeout) : ICMP_DEFAULTS.timeoutMs,
    };
    optionsOf.set(m, o);
  }
  return o;
}

/** The ICMP prober; share one per agent (it owns the engine's sockets). */
export class IcmpEchoProber implements Prober<"icmp"> {
  readonly type = "icmp" as const;
  constructor(readonly engine: IcmpEngine = new IcmpEngine()) {}

  status(): ProberStatus {
    const v4 = this.engine.describe(false);
    if ("error" in v4) return { ready: false, message: `ICMP probes disabled: ${v4.error}`, fields: { reason: v4.error } };
    return {
      ready: true,
      message: `ICMP through ${v4.kind === "ping" ? "an unprivileged ping socket (SOCK_DGRAM)" : "a raw socket (SOCK_RAW)"}`,
      fields: { socket: v4.kind, identifier: v4.identifier, rcvbufBytes: v4.rcvbufBytes },
    };
  }

  async probe(target: IcmpTarget): Promise<IcmpResult> {
    const opts = echoOptions(target.module);
    const startWall = Date.now();
    const start = performance.now();
    const result = create(IcmpResultSchema, { targetRegion: target.targetRegion, address: target.address, time: timestampFromMs(startWall) });
    try {
      // The module's timeout bounds the resolve phase too (docs/probes.md "ICMP"): a resolver that
      // does not answer fails the round with "resolve: ...", it does not hold it open.
      const r = await resolveHostWithin(target.address, opts.timeoutMs);
      result.resolvedIp = r.ip;
      result.resolveSeconds = r.seconds;
      const o = await this.engine.echo(result.resolvedIp, opts);
      // Statistics and the histogram straight from the round's RTT buffer (ns, NaN = lost).
      const m = new Moments();
      const counts = new Array<number>(RTT_BUCKETS).fill(0);
      for (const ns of o.rttNs) {
        if (Number.isNaN(ns)) continue;
        m.add(ns / 1e9);
        counts[rttBucket(ns / 1e9)]!++;
      }
      this.engine.release(o); // nothing below reads the RTT buffer
      const s = m.stats();
      Object.assign(result, {
        // The histogram, not every RTT, crosses the wire: 20 counts instead of `count` doubles.
        sent: o.sent, received: o.received, duplicates: o.duplicates, corrupted: o.corrupted, rttBucketCounts: counts,
        minSeconds: s.min, meanSeconds: s.mean, maxSeconds: s.max, stddevSeconds: s.stddev, error: o.error,
      });
    } catch (e) {
      result.error = roundErrorText(result.resolvedIp, e);
    }
    result.durationSeconds = (performance.now() - start) / 1000;
    return result;
  }

  close(): void {
    this.engine.close();
  }
}
