/**
 * Runs results through the server's real aggregation path (kinds' ingests, AggregationWindows,
 * SeriesStore) on a fake clock, and reads the exposition text back: what /metrics would show.
 */
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { AggregationWindows } from "../../lib/aggregation/window.ts";
import { SeriesStore } from "../../lib/metrics/series.ts";
import { Moments } from "../../lib/aggregation/moments.ts";
import type { ProberType } from "../../lib/probes/kind.ts";
import { HttpResultSchema, type HttpResult } from "../../lib/rpc/gen/probermesh/v1/http_pb.ts";
import { IcmpResultSchema, type IcmpResult } from "../../lib/rpc/gen/probermesh/v1/icmp_pb.ts";
import { createIngests } from "../../lib/server/kinds.ts";
import { parseExposition } from "./procs.ts";

/** A server-side aggregation pipeline on a fake clock (unix ms, starts at `t0`). */
export function pipeline(intervalMs = 1000, t0 = 1_000_000_000_000) {
  let t = t0;
  const now = () => t;
  const store = new SeriesStore(3600_000, now);
  const ingests = createIngests(store);
  const windows = new AggregationWindows<ProberType>(intervalMs, ingests, now);
  return {
    store, ingests, windows,
    now,
    advance(ms: number) {
      t += ms;
    },
    /** Advances past the current window's end + lateness and publishes it. */
    closeCurrent() {
      t = (Math.floor(t / intervalMs) + 1) * intervalMs + windows.allowedLatenessMs;
      return windows.tick();
    },
    async scrape() {
      return parseExposition(await store.metrics());
    },
  };
}

/** An ICMP result as an agent of this release sends it (summary fields from the RTTs). */
export function icmpResult(address: string, sent: number, rtts: number[], timeMs: number, extra: Partial<MessageInitShape<typeof IcmpResultSchema>> = {}): IcmpResult {
  const s = Moments.of(rtts);
  return create(IcmpResultSchema, {
    targetRegion: "t", address, resolvedIp: address, sent, received: rtts.length, rttsSeconds: rtts,
    minSeconds: s.min, meanSeconds: s.mean, maxSeconds: s.max, stddevSeconds: s.stddev,
    time: timestampFromMs(timeMs), durationSeconds: 0.1, ...extra,
  } as MessageInitShape<typeof IcmpResultSchema>);
}

/** An HTTP result. */
export function httpResult(timeMs: number, extra: Partial<MessageInitShape<typeof HttpResultSchema>>): HttpResult {
  return create(HttpResultSchema, { targetRegion: "t", url: "http://u/", time: timestampFromMs(timeMs), durationSeconds: 0.1, success: true, statusCode: 200, ...extra } as MessageInitShape<typeof HttpResultSchema>);
}
