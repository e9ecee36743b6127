/**
 * The agent's outbox: batches are split under the push size limit in order, and the queue is
 * bounded (oldest dropped, counted).
 */
import { expect, test } from "bun:test";
import { create, toBinary } from "@bufbuild/protobuf";
import { Outbox, splitBatch, emptyBatch } from "../lib/agent/outbox.ts";
import { AgentSchema, IcmpResultSchema, PathTraceSchema, PushResultsRequestSchema } from "../lib/rpc/gen/probermesh/v1/probermesh_pb.ts";
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
  const box = new Outbox();
  const traceOnly = emptyBatch();
  traceOnly.traces.push(batch.traces[0]!);
  for (const p of splitBatch(agent, traceOnly, limit)) box.add(p);
  expect(box.size).toBe(1);
});

test("the outbox keeps at most its bound, dropping the oldest, and a failed send keeps the batch", async () => {
  const box = new Outbox(3);
  for (let i = 0; i < 5; i++) box.add(create(PushResultsRequestSchema, { agent, icmp: [icmpResult(`127.0.1.${i}`, 1, [0.001], 0)] }));
  expect([box.size, box.dropped]).toEqual([3, 2]);
  const sent: string[] = [];
  await expect(box.flush(async (b) => {
    if (sent.length === 2) throw new Error("server away");
    sent.push(b.icmp[0]!.address);
  })).rejects.toThrow("server away");
  expect(sent).toEqual(["127.0.1.2", "127.0.1.3"]);
  expect(box.size).toBe(1);
});
