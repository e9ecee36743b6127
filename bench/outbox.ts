/**
 * Outbox heap benchmark: what a queued ICMP result costs while the server is away. Queues N
 * synthetic ICMP results shaped like the prober's (64 echoes, the 20-count RTT histogram, summary
 * statistics, error-state weight) the way the agent does — one push period of `--targets` results
 * split with splitBatch under PUSH_SPLIT_BYTES, then Outbox.add — and reads the process's memory
 * after a full GC, before and after. For comparison, the same results held as message objects
 * (what the outbox held before 0.4: PushResultsRequest objects).
 *
 *   bun run bench/outbox.ts                          # 100,000 results, pushes of 10,000
 *   bun run bench/outbox.ts --results 200000 --targets 1000
 */
import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { emptyBatch, Outbox, OUTBOX_MAX_BYTES_DEFAULT, splitBatch } from "../lib/agent/outbox.ts";
import { rttBucketCounts } from "../lib/probes/icmp/buckets.ts";
import { IcmpResultSchema } from "../lib/rpc/gen/probermesh/v1/icmp_pb.ts";
import { AgentSchema, type PushResultsRequest } from "../lib/rpc/gen/probermesh/v1/probermesh_pb.ts";
import { PUSH_SPLIT_BYTES } from "../lib/rpc/limits.ts";
import { loopbackTargets } from "./targets.ts";

const arg = (name: string, dflt: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const total = arg("results", 100_000);
const targets = arg("targets", 10_000);

const agent = create(AgentSchema, { region: "eu-west-1", ip: "10.0.0.1", version: "0.4.0", hostname: "prober-eu-west-1-a" });
const addresses = loopbackTargets(targets);

/** One push period: a result per target, as the ICMP prober makes them (a few lost echoes, varied RTTs). */
function period(k: number): PushResultsRequest[] {
  const batch = emptyBatch();
  const t0 = 1_700_000_000_000 + k * 15_000;
  for (let i = 0; i < targets; i++) {
    const rtts = Array.from({ length: 62 + (i % 3) }, (_, j) => 0.0004 + ((i * 7 + j * 13) % 97) * 1e-5);
    const mean = rtts.reduce((a, b) => a + b, 0) / rtts.length;
    batch.icmp.push(create(IcmpResultSchema, {
      targetRegion: "us-east-1", address: addresses[i]!, resolvedIp: addresses[i]!, time: timestampFromMs(t0 + i),
      sent: 64, received: rtts.length, rttBucketCounts: rttBucketCounts(rtts),
      minSeconds: Math.min(...rtts), meanSeconds: mean, maxSeconds: Math.max(...rtts), stddevSeconds: 0.00021 + i * 1e-9,
      resolveSeconds: 0, durationSeconds: 0.95 + i * 1e-6, sampleWeight: 1,
    }));
  }
  return splitBatch(agent, batch, PUSH_SPLIT_BYTES);
}

/** Heap in use (Bun counts typed arrays' bytes in it: the encoded batches) and RSS after a full GC, bytes. */
function memory() {
  Bun.gc(true);
  Bun.gc(true);
  const m = process.memoryUsage();
  return { heap: m.heapUsed, rss: m.rss };
}

const periods = Math.ceil(total / targets);
const rows: string[] = [];

{
  const before = memory();
  const box = new Outbox({ maxBytes: OUTBOX_MAX_BYTES_DEFAULT * 16, instanceId: "bench" });
  for (let k = 0; k < periods; k++) for (const r of period(k)) box.add(r);
  const after = memory();
  const n = box.queuedPoints;
  rows.push(`| encoded (Outbox) | ${n.toLocaleString("en")} | ${box.size} | ${(box.bytes / n).toFixed(1)} | ${((after.heap - before.heap) / n).toFixed(1)} | ${((after.rss - before.rss) / 2 ** 20).toFixed(0)} |`);
}
{
  const before = memory();
  const held: PushResultsRequest[] = [];
  for (let k = 0; k < periods; k++) held.push(...period(k));
  const after = memory();
  const n = held.reduce((x, r) => x + r.icmp.length, 0);
  rows.push(`| message objects (before 0.4) | ${n.toLocaleString("en")} | ${held.length} | n/a | ${((after.heap - before.heap) / n).toFixed(1)} | ${((after.rss - before.rss) / 2 ** 20).toFixed(0)} |`);
}

console.log(`## Outbox: memory per queued ICMP result (${total.toLocaleString("en")} results in pushes of ${targets.toLocaleString("en")}, after a full GC)\n`);
console.log("| kept as | results queued | batches | encoded bytes per result | heap bytes per result (after full GC) | RSS growth MB (garbage of building them included) |");
console.log("|---|---|---|---|---|---|");
for (const r of rows) console.log(r);
