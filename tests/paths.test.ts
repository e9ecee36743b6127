/**
 * The server's path-trace store (lib/server/paths.ts): newest first, bounded per target and in
 * keys, the least recently updated key going first.
 */
import { expect, test } from "bun:test";
import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { PathTraceSchema, TraceHopSchema } from "../lib/rpc/gen/probermesh/v1/probermesh_pb.ts";
import { PathStore } from "../lib/server/paths.ts";

const trace = (targetRegion: string, address: string, ms: number) => create(PathTraceSchema, { targetRegion, address, time: timestampFromMs(ms), reason: "error_state" });

test("keeps the latest traces per (source region, target), newest first, filtered by either region", () => {
  const s = new PathStore(2, 100);
  for (let i = 0; i < 5; i++) s.add({ sourceRegion: "a", agentIp: "10.0.0.1", trace: trace("b", "10.0.1.1", 1000 + i) });
  s.add({ sourceRegion: "c", agentIp: "10.0.0.2", trace: trace("b", "10.0.1.1", 900) });
  const ab = s.list("a", "b");
  expect(ab.map((p) => Number(p.trace.time!.seconds) * 1000 + p.trace.time!.nanos / 1e6)).toEqual([1004, 1003]);
  expect(s.list("", "b")).toHaveLength(3);
  expect(s.list("c")).toHaveLength(1);
  expect(s.list("x")).toEqual([]);
});

test("at most maxKeys targets: the least recently updated goes first", () => {
  const s = new PathStore(3, 10);
  for (let i = 0; i < 10; i++) s.add({ sourceRegion: "a", agentIp: "10.0.0.1", trace: trace("b", `10.0.1.${i}`, i) });
  s.add({ sourceRegion: "a", agentIp: "10.0.0.1", trace: trace("b", "10.0.1.0", 100) }); // refreshes target 0
  for (let i = 10; i < 15; i++) s.add({ sourceRegion: "a", agentIp: "10.0.0.1", trace: trace("b", `10.0.1.${i}`, i) });
  expect(s.size).toBe(10);
  const kept = new Set(s.list().map((p) => p.trace.address));
  expect(kept.has("10.0.1.0")).toBe(true); // refreshed, so kept
  for (const gone of [1, 2, 3, 4, 5]) expect(kept.has(`10.0.1.${gone}`)).toBe(false);
  expect(kept.has("10.0.1.14")).toBe(true);
});

test("at most maxHops hops in all: big traces push out the least recently updated targets", () => {
  const s = new PathStore(3, 1000, 100);
  const big = (address: string) => {
    const t = trace("b", address, 0);
    t.hops = Array.from({ length: 40 }, (_, i) => create(TraceHopSchema, { ttl: i + 1, address: "10.9.9.9", sent: 10, received: 10 }));
    return t;
  };
  for (let i = 0; i < 5; i++) s.add({ sourceRegion: "a", agentIp: "10.0.0.1", trace: big(`10.0.3.${i}`) });
  expect(s.hopCount).toBeLessThanOrEqual(100);
  expect(new Set(s.list().map((p) => p.trace.address))).toEqual(new Set(["10.0.3.3", "10.0.3.4"]));
});
