/**
 * Server benchmark: simulated agents speaking the real binary protocol (Connect, protobuf over
 * HTTP/1.1) against the compiled server (dist/server) on loopback, a full dynamic ICMP mesh, once
 * with the 0.1 wire format (64 RTTs per result) and once with 0.2's (20 bucket counts). Prints a
 * markdown table: agents, regions, results/s, server CPU cores, peak RSS, push p99, /metrics size
 * and scrape time. The simulated agents send no packet anywhere: their IPs are only strings.
 *
 *   npm run bench:server                                  # 200 agents / 50 regions and 500 / 100
 *   bun run bench/server.ts --agents 200 --regions 50 --seconds 60
 */
import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { readFileSync } from "node:fs";
import { rttBucketCounts } from "../lib/probes/icmp/buckets.ts";
import { Moments } from "../lib/aggregation/moments.ts";
import { IcmpResultSchema, ProberMeshService, type IcmpResult } from "../lib/rpc/gen/probermesh/v1/probermesh_pb.ts";
import { SERVER_BIN, freePort, start, waitFor } from "../tests/helpers/procs.ts";
import { quantile } from "../tests/helpers/stats.ts";

const arg = (name: string, dflt: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const INTERVAL_MS = 15_000;
const PACKETS = 64;

/** utime + stime of a process, seconds. */
function cpuSeconds(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  return (Number(f[11]) + Number(f[12])) / 100;
}
const peakRssMb = (pid: number) => Number(/VmHWM:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))![1]) / 1024;

interface Row { format: string; agents: number; regions: number; resultsPerSec: number; cores: number; peakMb: number; pushP99Ms: number; scrapeMs: number; metricsMb: number; rejected: number }

async function run(agents: number, regions: number, seconds: number, format: "0.1" | "0.2"): Promise<Row> {
  const [rpc, web] = [await freePort(), await freePort()];
  const server = start([SERVER_BIN, "-server.rpc.listen.addr", `127.0.0.1:${rpc}`, "-server.http.listen.addr", `127.0.0.1:${web}`, "-server.registry.max.agents", String(agents + 10)]);
  try {
    await waitFor("server ready", 10_000, async () => (await fetch(`http://127.0.0.1:${web}/-/ready`)).ok);
    const client = createClient(ProberMeshService, createConnectTransport({ baseUrl: `http://127.0.0.1:${rpc}`, httpVersion: "1.1", useBinaryFormat: true }));
    const sim = Array.from({ length: agents }, (_, i) => ({ region: `r${i % regions}`, ip: `127.${100 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`, version: "bench", hostname: "bench" }));
    for (const a of sim) await client.heartbeat({ agent: a });
    // One result per target: every agent of every other region (the full dynamic mesh).
    const rtts = Array.from({ length: PACKETS }, (_, k) => 0.002 + (k % 7) * 1e-4);
    const s = Moments.of(rtts);
    const template = (t: (typeof sim)[number]): IcmpResult => create(IcmpResultSchema, {
      targetRegion: t.region, address: t.ip, resolvedIp: t.ip, sent: PACKETS, received: PACKETS,
      minSeconds: s.min, meanSeconds: s.mean, maxSeconds: s.max, stddevSeconds: s.stddev, durationSeconds: 1,
      ...(format === "0.1" ? { rttsSeconds: rtts } : { rttBucketCounts: rttBucketCounts(rtts) }),
    });
    const batches = sim.map((a) => sim.filter((t) => t.region !== a.region).map(template));
    const perPush = batches[0]!.length;
    const latencies: number[] = [];
    let rejected = 0;
    const stopAt = Date.now() + seconds * 1000;
    const pushAll = async (i: number) => {
      // Agents push at their own offset in the interval, like the real ones.
      await Bun.sleep((i / agents) * INTERVAL_MS);
      while (Date.now() < stopAt) {
        const now = Date.now();
        for (const r of batches[i]!) r.time = timestampFromMs(now - 1000);
        const t0 = performance.now();
        const res = await client.pushResults({ agent: sim[i], icmp: batches[i] });
        latencies.push(performance.now() - t0);
        rejected += res.rejected;
        const beats = client.heartbeat({ agent: sim[i] });
        await beats;
        await Bun.sleep(Math.max(0, INTERVAL_MS - (Date.now() - now)));
      }
    };
    const warm = Date.now() + INTERVAL_MS; // the first interval registers and warms up
    const pushers = sim.map((_, i) => pushAll(i));
    await Bun.sleep(Math.max(0, warm - Date.now()));
    const c0 = cpuSeconds(server.proc.pid!);
    const t0 = Date.now();
    await Promise.all(pushers);
    const cores = (cpuSeconds(server.proc.pid!) - c0) / ((Date.now() - t0) / 1000);
    const rssBeforeScrape = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${server.proc.pid}/status`, "utf8"))![1]) / 1024;
    const s0 = performance.now();
    const text = await (await fetch(`http://127.0.0.1:${web}/metrics`)).text();
    const scrapeMs = performance.now() - s0;
    if (process.argv.includes("--verbose")) console.error(`${format} ${agents} agents: RSS before the scrape ${rssBeforeScrape.toFixed(0)} MB, peak ${peakRssMb(server.proc.pid!).toFixed(0)} MB`);
    return {
      format, agents, regions, resultsPerSec: (agents * perPush) / (INTERVAL_MS / 1000), cores, peakMb: peakRssMb(server.proc.pid!),
      pushP99Ms: quantile(latencies, 0.99), scrapeMs, metricsMb: text.length / 1e6, rejected,
    };
  } finally {
    await server.kill();
  }
}

const seconds = arg("seconds", 60);
const sizes: [number, number][] = process.argv.includes("--agents") ? [[arg("agents", 200), arg("regions", 50)]] : [[200, 50], [500, 100]];
const rows: Row[] = [];
for (const [agents, regions] of sizes) for (const format of ["0.1", "0.2"] as const) rows.push(await run(agents, regions, seconds, format));
console.log(`## Server: full dynamic mesh of simulated agents, one push per agent per 15 s, ${seconds} s measured after a 15 s warm-up\n`);
console.log("| wire format | agents | regions | results/s | server CPU cores | peak RSS MB | push p99 ms | /metrics MB | scrape ms | rejected |");
console.log("|---|---|---|---|---|---|---|---|---|---|");
for (const r of rows) console.log(`| ${r.format === "0.1" ? "0.1 (64 RTTs)" : "0.2 (20 bucket counts)"} | ${r.agents} | ${r.regions} | ${r.resultsPerSec.toFixed(0)} | ${r.cores.toFixed(3)} | ${r.peakMb.toFixed(0)} | ${r.pushP99Ms.toFixed(1)} | ${r.metricsMb.toFixed(1)} | ${r.scrapeMs.toFixed(0)} | ${r.rejected} |`);
process.exit(0);
