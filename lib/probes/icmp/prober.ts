/**
 * The ICMP kind's agent half (lib/probes/kind.ts): resolve (names only, with the module's
 * preferred_ip_protocol / ip_protocol_fallback), then one echo round on the shared IcmpEngine
 * (RFC 792 / RFC 4443 echo; docs/probes.md "ICMP"; ttl, dont_fragment and source_ip_address put
 * it on a socket with those settings), summarised into an IcmpResult: sent, received, per-packet
 * RTTs and their min/mean/max/stddev, all in seconds.
 */
import { create } from "@bufbuild/protobuf";
import { durationMs, timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Moments } from "../../aggregation/moments.ts";
import { IcmpResultSchema, type IcmpModule, type IcmpResult, type IcmpTarget } from "../../rpc/gen/probermesh/v1/icmp_pb.ts";
import type { Prober, ProberStatus } from "../kind.ts";
import { resolveHostWithin, roundErrorText, type IpPreference } from "../resolve.ts";
import { RTT_BUCKETS, rttBucket } from "./buckets.ts";
import { ICMP_DEFAULTS } from "./defaults.ts";
import { IcmpEngine, type EchoOptions } from "./engine.ts";

/** A round's options: the engine's, and how a name is resolved. */
export interface RoundOptions extends EchoOptions {
  /** preferred_ip_protocol. */
  prefer: IpPreference;
  /** ip_protocol_fallback. */
  fallback: boolean;
}

/** Round options per module object (the agent shares one module among targets with equal ones). */
const optionsOf = new WeakMap<object, RoundOptions>();
const DEFAULT_OPTIONS: RoundOptions = {
  count: ICMP_DEFAULTS.packetCount, intervalMs: ICMP_DEFAULTS.intervalMs, payloadSize: ICMP_DEFAULTS.payloadSize, timeoutMs: ICMP_DEFAULTS.timeoutMs,
  prefer: ICMP_DEFAULTS.preferredIpProtocol, fallback: ICMP_DEFAULTS.ipProtocolFallback,
};

/**
 * A module's round options with the defaults filled in (durations in milliseconds); cached per
 * module object. ttl / dontFragment / sourceIp are present only when set (a round without them
 * stays on the engine's shared sockets). A module without preferred_ip_protocol (from a server
 * before 0.5) resolves IPv4 first with fallback, as agents before 0.5 did.
 */
export function echoOptions(m: IcmpModule | undefined): RoundOptions {
  if (!m) return DEFAULT_OPTIONS;
  let o = optionsOf.get(m);
  if (!o) {
    o = {
      count: m.packetCount || ICMP_DEFAULTS.packetCount,
      intervalMs: m.interval ? durationMs(m.interval) : ICMP_DEFAULTS.intervalMs,
      payloadSize: m.payloadSize || ICMP_DEFAULTS.payloadSize,
      timeoutMs: m.timeout ? durationMs(m.timeout) : ICMP_DEFAULTS.timeoutMs,
      prefer: m.preferredIpProtocol === "ip6" ? "ip6" : "ip4",
      fallback: m.preferredIpProtocol ? m.ipProtocolFallback : ICMP_DEFAULTS.ipProtocolFallback,
    };
    if (m.ttl) o.ttl = m.ttl;
    if (m.dontFragment) o.dontFragment = true;
    if (m.sourceIpAddress) o.sourceIp = m.sourceIpAddress;
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

  /** One round; `signal` ends a pending name resolution at once (the echo round itself runs to its end). */
  async probe(target: IcmpTarget, signal?: AbortSignal): Promise<IcmpResult> {
    const opts = echoOptions(target.module);
    const startWall = Date.now();
    const start = performance.now();
    const result = create(IcmpResultSchema, { targetRegion: target.targetRegion, address: target.address, time: timestampFromMs(startWall) });
    try {
      // The module's timeout bounds the resolve phase too (docs/probes.md "ICMP"): a resolver that
      // does not answer fails the round with "resolve: ...", it does not hold it open.
      const r = await resolveHostWithin(target.address, opts.timeoutMs, opts.prefer, opts.fallback, signal);
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
