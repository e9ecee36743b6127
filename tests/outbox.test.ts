/**
 * The agent's outbox: batches are split under the push size limit in order; the queue holds them
 * encoded, with a batch identity (instance, sequence) kept on resends, bounded in bytes (oldest
 * dropped), and every dropped result is reported exactly once in a later batch's dropped_points.
 */
import { expect, test } from "bun:test";
import { clone, create, equals, toBinary } from "@bufbuild/protobuf";
import { Outbox, splitBatch, emptyBatch, pointsOf } from "../lib/agent/outbox.ts";
import { IcmpResultSchema } from "../lib/rpc/gen/probermesh/v1/icmp_pb.ts";
import { AgentSchema, PathTraceSchema, PushResultsRequestSchema, type PushResultsRequest } from "../lib/rpc/gen/probermesh/v1/probermesh_pb.ts";
import { httpResult, icmpResult } from "./helpers/aggregate.ts";

const agent = create(AgentSchema, { region: "r", ip: "127.0.0.1" });

test("a batch is split into pushes under the limit, results and traces in order, none lost", () => {
  const batch = emptyBatch();
  for (let i = 0; i < 25; i++) batch.icmp.push(icmpResult(`127.0.0.${i + 1}`, 64, Array(64).fill(0.001), 0));
  for (let i = 0; i < 5; i++) batch.http.push(httpResult(0, { url: `http://h${i}/` }));
  for (let i = 0; i < 12; i++) batch.traces.push(create(PathTraceSchema, { targetRegion: "t", address: `127.0.2.${i}`, reason: "error_state", hops: Array.from({ length: 8 }, (_, k) => ({ ttl: k + 1, address: "10.0.0.1", sent: 10, received: 10 })) }));
  const one = toBinary(IcmpResultSchema, batch.icmp[0]!).byteLength;
  const limit = one * 10;
  const pushes = splitBatch(agent, batch, limit);
  expect(pushes.length).toBeGreaterThanOrEqual(3);
  for (const p of pushes) expect(toBinary(PushResultsRequestSchema, p).byteLength).toBeLessThan(limit + 200);
  expect(pushes.flatMap((p) => p.icmp.map((r) => r.address))).toEqual(batch.icmp.map((r) => r.address));
  expect(pushes.flatMap((p) => p.http.map((r) => r.url))).toEqual(batch.http.map((r) => r.url));
  expect(pushes.flatMap((p) => p.traces.map((t) => t.address))).toEqual(batch.traces.map((t) => t.address));
  expect(pushes.every((p) => p.agent?.region === "r")).toBe(true);
  expect(splitBatch(agent, emptyBatch(), limit)).toEqual([]);
  // A batch of traces alone is queued (a push with no result but a trace is not empty).
  const box = new Outbox({ maxBytes: 1 << 20, instanceId: "i" });
  const traceOnly = emptyBatch();
  traceOnly.traces.push(batch.traces[0]!);
  for (const p of splitBatch(agent, traceOnly, limit)) box.add(p);
  expect(box.size).toBe(1);
});

const ID = "3f0c2b9e-agent";

/** A push of `icmp` ICMP results and `http` HTTP results, addresses tagged with `tag`. */
function req(tag: string, icmp: number, http = 0): PushResultsRequest {
  return create(PushResultsRequestSchema, {
    agent,
    icmp: Array.from({ length: icmp }, (_, i) => icmpResult(`127.${tag}.${i >> 8}.${i & 255}`, 64, Array(60).fill(0.001), 1_700_000_000_000 + i)),
    http: Array.from({ length: http }, (_, i) => httpResult(1_700_000_000_000, { url: `http://${tag}/${i}` })),
  });
}

/** What each send saw (a copy, before the send changes it), and a switch to make sends fail. */
function server() {
  const got: PushResultsRequest[] = [];
  let failAfter = Infinity;
  return {
    got,
    failAfter(n: number) {
      failAfter = got.length + n;
    },
    send: async (r: PushResultsRequest) => {
      if (got.length >= failAfter) throw new Error("server away");
      got.push(clone(PushResultsRequestSchema, r));
      r.sentTime = { $typeName: "google.protobuf.Timestamp", seconds: 1n, nanos: 0 }; // send may change it
    },
  };
}

test("batches are numbered 1, 2, ... in the order of add; a resend after a failed flush keeps its number", async () => {
  const box = new Outbox({ maxBytes: 1 << 20, instanceId: ID });
  const srv = server();
  box.add(req("1", 2));
  box.add(req("1", 0)); // empty: ignored, no number used
  box.add(req("2", 1, 1));
  srv.failAfter(0);
  await expect(box.flush(srv.send)).rejects.toThrow("server away");
  box.add(req("3", 3));
  srv.failAfter(1);
  await expect(box.flush(srv.send)).rejects.toThrow("server away");
  srv.failAfter(Infinity);
  expect(await box.flush(srv.send)).toBe(2);
  expect(srv.got.map((r) => [r.agentInstanceId, r.batchSequence, r.icmp[0]!.address])).toEqual([
    [ID, 1n, "127.1.0.0"], [ID, 2n, "127.2.0.0"], [ID, 3n, "127.3.0.0"],
  ]);
  expect([box.size, box.bytes, box.queuedPoints]).toEqual([0, 0, 0]);
  box.add(req("4", 1));
  await box.flush(srv.send);
  expect(srv.got.at(-1)!.batchSequence).toBe(4n);
});

test("decoded batches equal what was added (stamped), and the byte count is their encoded size", async () => {
  const box = new Outbox({ maxBytes: 1 << 20, instanceId: ID });
  const added = [req("1", 5), req("2", 0, 3), req("3", 1)];
  added[2]!.traces.push(create(PathTraceSchema, { targetRegion: "t", address: "127.3.0.0", reason: "error_state", hops: [{ ttl: 1, address: "10.0.0.1", sent: 10, received: 9 }] }));
  for (const r of added) box.add(r);
  expect(box.bytes).toBe(added.reduce((n, r) => n + toBinary(PushResultsRequestSchema, r).byteLength, 0));
  expect([box.size, box.queuedPoints]).toEqual([3, 5 + 3 + 1]);
  const srv = server();
  expect(await box.flush(srv.send)).toBe(3);
  expect(srv.got.length).toBe(3);
  for (let i = 0; i < 3; i++) expect(equals(PushResultsRequestSchema, srv.got[i]!, added[i]!)).toBe(true);
  expect(srv.got[2]!.traces[0]!.hops[0]!.received).toBe(9);
});

test("a flush that fails in the middle keeps the unsent batches, in order, and sends them next time", async () => {
  const box = new Outbox({ maxBytes: 1 << 20, instanceId: ID });
  for (let i = 1; i <= 5; i++) box.add(req(String(i), 1));
  const srv = server();
  srv.failAfter(2);
  await expect(box.flush(srv.send)).rejects.toThrow("server away");
  expect(srv.got.map((r) => r.icmp[0]!.address)).toEqual(["127.1.0.0", "127.2.0.0"]);
  expect([box.size, box.queuedPoints]).toEqual([3, 3]);
  box.add(req("6", 1));
  srv.failAfter(Infinity);
  expect(await box.flush(srv.send)).toBe(4);
  expect(srv.got.map((r) => r.icmp[0]!.address)).toEqual(["127.1.0.0", "127.2.0.0", "127.3.0.0", "127.4.0.0", "127.5.0.0", "127.6.0.0"]);
});

test("the byte cap drops the oldest batches first; the next batch reports their results in dropped_points", async () => {
  const one = toBinary(PushResultsRequestSchema, req("9", 10)).byteLength;
  // Room for three batches of 10 results (and their stamps), not four.
  const box = new Outbox({ maxBytes: one * 3 + 100, instanceId: ID });
  for (let i = 1; i <= 3; i++) box.add(req(String(i), 10));
  expect([box.size, box.droppedBatches, box.droppedPoints]).toEqual([3, 0, 0]);
  expect(box.takeDropsToLog()).toBeUndefined();
  box.add(req("4", 10));
  expect([box.size, box.droppedBatches, box.droppedPoints]).toEqual([3, 1, 10]);
  expect(box.bytes).toBeLessThanOrEqual(one * 3 + 100);
  box.add(req("5", 10));
  expect(box.takeDropsToLog()).toEqual({ batches: 2, points: 20 });
  expect(box.takeDropsToLog()).toBeUndefined();
  const srv = server();
  await box.flush(srv.send);
  // Batches 1 and 2 went; 4 and 5 each say what was dropped to make room for them.
  expect(srv.got.map((r) => [r.batchSequence, r.droppedPoints])).toEqual([[3n, 0n], [4n, 10n], [5n, 10n]]);
  // A batch too big for the cap alone is still queued, alone.
  const small = new Outbox({ maxBytes: one - 1, instanceId: ID });
  small.add(req("1", 3));
  small.add(req("2", 10));
  expect([small.size, small.droppedPoints]).toEqual([1, 3]);
});

test("a dropped batch's own dropped_points are carried on: the drop count is never lost with it", async () => {
  const one = toBinary(PushResultsRequestSchema, req("9", 10)).byteLength;
  const box = new Outbox({ maxBytes: one * 2 + 100, instanceId: ID });
  box.add(req("1", 10));
  box.add(req("2", 10));
  box.add(req("3", 10)); // drops 1: carries 10
  box.add(req("4", 10)); // drops 2: carries 10
  box.add(req("5", 10)); // drops 3 (10 results + its 10): carries 20
  const srv = server();
  await box.flush(srv.send);
  expect(srv.got.map((r) => [r.batchSequence, r.droppedPoints])).toEqual([[4n, 10n], [5n, 20n]]);
  expect(box.droppedPoints).toBe(30);
});

test("the batch being sent is never dropped; adds during the send drop the others; the sums add up", async () => {
  const one = toBinary(PushResultsRequestSchema, req("9", 10)).byteLength;
  const box = new Outbox({ maxBytes: one * 2 + 100, instanceId: ID });
  box.add(req("1", 10));
  box.add(req("2", 10));
  let release!: () => void;
  const seen: bigint[] = [];
  let first = true;
  const flushing = box.flush(async (r) => {
    seen.push(r.batchSequence);
    if (first) {
      first = false;
      await new Promise<void>((res) => (release = res));
      throw new Error("server away");
    }
  });
  await Bun.sleep(0);
  expect(seen).toEqual([1n]);
  // Batch 1 is in flight: three adds drop 2, then 3 (the queue holds two besides the one sent).
  for (let i = 3; i <= 5; i++) box.add(req(String(i), 10));
  expect([box.size, box.droppedBatches]).toEqual([3, 2]);
  release();
  await expect(flushing).rejects.toThrow("server away");
  // The failed one is the oldest again (1, 4, 5: over the cap by it); the next add drops 1 and 4.
  box.add(req("6", 10));
  expect([box.size, box.droppedBatches, box.droppedPoints]).toEqual([2, 4, 40]);
  const srv = server();
  await box.flush(srv.send);
  expect(srv.got.map((r) => [r.batchSequence, r.droppedPoints])).toEqual([[5n, 10n], [6n, 30n]]);
  expect(srv.got.reduce((n, r) => n + r.droppedPoints, 0n)).toBe(BigInt(box.droppedPoints));
});

test("over a long outage with partial recoveries, results sent + results dropped = results added, and dropped_points sums to droppedPoints", async () => {
  let seed = 12345;
  const rnd = (n: number) => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) % n);
  const box = new Outbox({ maxBytes: 40_000, instanceId: ID });
  const srv = server();
  let added = 0;
  for (let round = 0; round < 300; round++) {
    const r = req(String(round % 250), rnd(40), rnd(3));
    added += pointsOf(r);
    box.add(r);
    expect(box.bytes).toBeLessThanOrEqual(40_000);
    if (rnd(8) === 0) {
      srv.failAfter(rnd(4) === 0 ? Infinity : rnd(3));
      await box.flush(srv.send).catch(() => undefined);
    }
  }
  srv.failAfter(Infinity);
  await box.flush(srv.send);
  expect(box.size).toBe(0);
  expect(box.droppedBatches).toBeGreaterThan(10); // the test exercised drops
  const sentPoints = srv.got.reduce((n, r) => n + pointsOf(r), 0);
  expect(sentPoints + box.droppedPoints).toBe(added);
  expect(srv.got.reduce((n, r) => n + r.droppedPoints, 0n)).toBe(BigInt(box.droppedPoints));
  // The server's dedupe is a high-water mark per instance: sends go in increasing sequence.
  for (let i = 1; i < srv.got.length; i++) expect(srv.got[i]!.batchSequence).toBeGreaterThan(srv.got[i - 1]!.batchSequence);
});

test("results lost otherwise (a batch refused for good) are reported with the next batch that has results", async () => {
  const o = new Outbox({ maxBytes: 1 << 20, instanceId: ID });
  o.reportLost(7);
  o.add(create(PushResultsRequestSchema, { agent })); // empty: ignored, the count waits
  o.add(req("next", 2));
  const sent: PushResultsRequest[] = [];
  await o.flush(async (b) => void sent.push(b));
  expect(sent.map((b) => b.droppedPoints)).toEqual([7n]);
});
