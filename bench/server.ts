/**
 * Server benchmark: simulated agents speaking the real binary protocol (Connect, protobuf over
 * HTTP/1.1) against the compiled server (dist/server) on loopback, a full dynamic ICMP mesh, once
 * with the 0.1 wire format (64 RTTs per result) and once with 0.2's (20 bucket counts). Prints a
 * markdown table: agents, regions, results/s, server CPU cores, peak RSS, push p99, /metrics size
 * and scrape time. The simulated agents send no packet anywhere: their IPs are only strings.
 *
 *   npm run bench:server                                  # 200 agents / 50 regions and 500 / 100
 *   bun run bench/server.ts --agents 200 --regions 50 --seconds 60
 *   bun run bench/server.ts --servers 2 --agents 500 --regions 100   # two servers + redis-server
 *
 * With --servers 2 the simulated agents share two servers through a Redis registry (a real
 * redis-server), half preferring each, using the agent's own failover client; agent i loses i mod 8
 * of 64 echoes per result; one server is killed halfway. Prints the loss from the sum of both
 * servers' counters next to the loss of what the agents had accepted, results accepted and
 * rejected, pushes that failed on both servers, and each server's CPU and peak RSS.
 */
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { ProberMeshService } from "../lib/rpc/gen/probermesh/v1/probermesh_pb.ts";
import { rpcClient } from "../lib/agent/client.ts";
import { SERVER_BIN, freePort, samples, scrape, start, waitFor, type Proc } from "../tests/helpers/procs.ts";
import { quantile } from "../tests/helpers/stats.ts";
import { cpuSeconds, peakRssMb, rssMb, startRedis } from "./proc_stats.ts";
import { PACKETS, meshBatch, simAgents } from "./sim.ts";

const arg = (name: string, dflt: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const INTERVAL_MS = 15_000;


interface Row { format: string; agents: number; regions: number; resultsPerSec: number; cores: number; peakMb: number; pushP99Ms: number; scrapeMs: number; metricsMb: number; rejected: number }

async function run(agents: number, regions: number, seconds: number, format: "0.1" | "0.2"): Promise<Row> {
  const [rpc, web] = [await freePort(), await freePort()];
  const server = start([SERVER_BIN, "-server.rpc.listen.addr", `127.0.0.1:${rpc}`, "-server.http.listen.addr", `127.0.0.1:${web}`, "-server.registry.max.agents", String(agents + 10)]);
  try {
    await waitFor("server ready", 10_000, async () => (await fetch(`http://127.0.0.1:${web}/-/ready`)).ok);
    const client = createClient(ProberMeshService, createConnectTransport({ baseUrl: `http://127.0.0.1:${rpc}`, httpVersion: "1.1", useBinaryFormat: true }));
    const sim = simAgents(agents, regions);
    for (const a of sim) await client.heartbeat({ agent: a });
    // One result per target: every agent of every other region (the full dynamic mesh).
    const batches = sim.map((_, i) => meshBatch(sim, i, format));
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
    const rssBeforeScrape = rssMb(server.proc.pid!);
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

/** Two servers sharing a Redis registry; one killed halfway. */
async function runPair(agents: number, regions: number, seconds: number): Promise<string> {
  const redis = await startRedis();
  const servers: { rpc: number; web: number; proc?: Proc; cores?: number; peakMb?: number }[] = [];
  try {
    for (let i = 0; i < 2; i++) {
      const s = { rpc: await freePort(), web: await freePort() } as (typeof servers)[number];
      s.proc = start([SERVER_BIN, "-server.registry.url", redis.url, "-server.rpc.listen.addr", `127.0.0.1:${s.rpc}`, "-server.http.listen.addr", `127.0.0.1:${s.web}`, "-server.registry.max.agents", String(agents + 10)]);
      servers.push(s);
    }
    for (const s of servers) await waitFor("server ready", 10_000, async () => (await fetch(`http://127.0.0.1:${s.web}/-/ready`)).ok);
    const addr = (first: number) => [first, 1 - first].map((i) => `127.0.0.1:${servers[i]!.rpc}`).join(",");
    const clients = [0, 1].map((first) => rpcClient({ serverAddr: addr(first), token: "", tlsCaFile: "", tlsCertFile: "", tlsKeyFile: "", failbackMs: 3_600_000 }));
    const sim = simAgents(agents, regions);
    for (const [i, a] of sim.entries()) await clients[i % 2]!.heartbeat({ agent: a });
    const batches = sim.map((_, i) => meshBatch(sim, i, "0.2", i % 8));
    let accepted = 0, rejected = 0, failed = 0, sentOk = 0, receivedOk = 0;
    let paused: Promise<void> | undefined;
    const stopAt = Date.now() + seconds * 1000;
    const pushAll = async (i: number) => {
      await Bun.sleep((i / agents) * INTERVAL_MS);
      while (Date.now() < stopAt) {
        if (paused) await paused;
        const now = Date.now();
        for (const r of batches[i]!) r.time = timestampFromMs(now - 1000);
        try {
          const res = await clients[i % 2]!.pushResults({ agent: sim[i], icmp: batches[i] });
          accepted += res.accepted;
          rejected += res.rejected;
          if (res.rejected === 0) {
            sentOk += PACKETS * batches[i]!.length;
            receivedOk += (PACKETS - (i % 8)) * batches[i]!.length;
          }
          await clients[i % 2]!.heartbeat({ agent: sim[i] });
        } catch {
          failed++;
        }
        await Bun.sleep(Math.max(0, INTERVAL_MS - (Date.now() - now)));
      }
    };
    const c0 = servers.map((s) => cpuSeconds(s.proc!.proc.pid!));
    const t0 = Date.now();
    const pushers = sim.map((_, i) => pushAll(i));
    await Bun.sleep((seconds * 1000) / 2);
    const pid = (i: number) => servers[i]!.proc!.proc.pid!;
    servers[1]!.cores = (cpuSeconds(pid(1)) - c0[1]!) / ((Date.now() - t0) / 1000);
    servers[1]!.peakMb = peakRssMb(pid(1));
    // Pause pushes, let those in flight land, read server 1's counters, kill it, go on.
    let resume = () => {};
    paused = new Promise((r) => (resume = r));
    await Bun.sleep(2000);
    const before = await scrape(`http://127.0.0.1:${servers[1]!.web}/metrics`);
    await servers[1]!.proc!.kill("SIGKILL");
    paused = undefined;
    resume();
    await Promise.all(pushers);
    servers[0]!.cores = (cpuSeconds(pid(0)) - c0[0]!) / ((Date.now() - t0) / 1000);
    servers[0]!.peakMb = peakRssMb(pid(0));
    const after = await scrape(`http://127.0.0.1:${servers[0]!.web}/metrics`);
    const sum = (n: string) => [before, after].reduce((x, m) => x + samples(m, n).reduce((y, v) => y + Number(v.value), 0), 0);
    const loss = 1 - sum("prober_icmp_packets_received_total") / sum("prober_icmp_packets_sent_total");
    const truth = 1 - receivedOk / sentOk;
    return [
      `## Two servers sharing a Redis registry: ${agents} simulated agents / ${regions} regions, ${seconds} s, server 1 killed at ${seconds / 2} s\n`,
      "| server | CPU cores | peak RSS MB |", "|---|---|---|",
      `| 0 (whole run) | ${servers[0]!.cores!.toFixed(3)} | ${servers[0]!.peakMb!.toFixed(0)} |`,
      `| 1 (until killed) | ${servers[1]!.cores!.toFixed(3)} | ${servers[1]!.peakMb!.toFixed(0)} |`,
      "", "| results accepted | rejected | pushes failed on both servers | loss: sum of both servers' counters | loss of what the agents had accepted |", "|---|---|---|---|---|",
      `| ${accepted} | ${rejected} | ${failed} | ${(loss * 100).toFixed(6)} % | ${(truth * 100).toFixed(6)} % |`,
    ].join("\n");
  } finally {
    for (const s of servers) await s.proc?.kill();
    await redis.proc.kill();
  }
}

const seconds = arg("seconds", 60);
const sizes: [number, number][] = process.argv.includes("--agents") ? [[arg("agents", 200), arg("regions", 50)]] : [[200, 50], [500, 100]];
if (arg("servers", 1) === 2) {
  console.log(await runPair(arg("agents", 500), arg("regions", 100), seconds));
  process.exit(0);
}
const rows: Row[] = [];
for (const [agents, regions] of sizes) for (const format of ["0.1", "0.2"] as const) rows.push(await run(agents, regions, seconds, format));
console.log(`## Server: full dynamic mesh of simulated agents, one push per agent per 15 s, ${seconds} s measured after a 15 s warm-up\n`);
console.log("| wire format | agents | regions | results/s | server CPU cores | peak RSS MB | push p99 ms | /metrics MB | scrape ms | rejected |");
console.log("|---|---|---|---|---|---|---|---|---|---|");
for (const r of rows) console.log(`| ${r.format === "0.1" ? "0.1 (64 RTTs)" : "0.2 (20 bucket counts)"} | ${r.agents} | ${r.regions} | ${r.resultsPerSec.toFixed(0)} | ${r.cores.toFixed(3)} | ${r.peakMb.toFixed(0)} | ${r.pushP99Ms.toFixed(1)} | ${r.metricsMb.toFixed(1)} | ${r.scrapeMs.toFixed(0)} | ${r.rejected} |`);
process.exit(0);
