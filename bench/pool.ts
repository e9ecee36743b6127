/**
 * What one GetTargetPool answer costs the server (docs/scale.md "Pool answers"): register A
 * agents in R regions with heartbeats (with UDP and TCP responders, so pools hold all three mesh
 * kinds), then fetch F pools of distinct agents, C at a time, as binary protobuf accepting gzip
 * (what the agent sends), and read the server's CPU time over the fetches (/proc). Each fetch is
 * an agent's first after its pool changed (its peers computed, its pool assembled): the case of
 * the refetches after a join. Then each fetch again naming the version it got
 * (known_pool_version): the periodic refresh of an unchanged pool.
 *
 * Prints a markdown row per server build and mode; `--server-bin` adds builds to compare (the
 * peer is the previous build, measured in the same run):
 *
 *   npm run bench:pool                                        # dist/server, full mesh and N = 2
 *   bun run bench/pool.ts --server-bin /tmp/old/dist/server   # and another build beside it
 *   bun run bench/pool.ts --agents 1000 --regions 100 --fetches 500
 *   bun run bench/pool.ts --server-profile /tmp/prof          # servers' CPU profiles and GC logs
 */
import { create, toBinary } from "@bufbuild/protobuf";
import { GetTargetPoolRequestSchema, GetTargetPoolResponseSchema, HeartbeatRequestSchema } from "../lib/rpc/gen/probermesh/v1/probermesh_pb.ts";
import { fromBinary } from "@bufbuild/protobuf";
import { SERVER_BIN, freePort, start, waitFor } from "../tests/helpers/procs.ts";
import { quantile } from "../tests/helpers/stats.ts";
import { cpuSeconds, machine, profilePrefix } from "./proc_stats.ts";

const argv = process.argv.slice(2);
const opt = (name: string) => (argv.indexOf(`--${name}`) >= 0 ? argv[argv.indexOf(`--${name}`) + 1] : undefined);
const AGENTS = Number(opt("agents") ?? 5000);
const REGIONS = Number(opt("regions") ?? 500);
const FETCHES = Number(opt("fetches") ?? 1000);
const CONCURRENCY = Number(opt("concurrency") ?? 4);
/** `--server-profile DIR`: each server's CPU profile and GC log (bench/proc_stats.ts profilePrefix()). */
const SERVER_PROFILE = opt("server-profile");
const BINS = [SERVER_BIN, ...argv.flatMap((a, i) => (a === "--server-bin" ? [argv[i + 1]!] : []))];

interface Row { bin: string; peers: number; cpuMs: number; p50: number; p99: number; kb: number; unchangedCpuMs: number }

async function run(bin: string, peers: number): Promise<Row> {
  const [rpc, http] = [await freePort(), await freePort()];
  // The pool refetch rate only paces heartbeat news; fetches here ask directly.
  const srv = start([bin, "-server.rpc.listen.addr", `127.0.0.1:${rpc}`, "-server.http.listen.addr", `127.0.0.1:${http}`,
    "-server.registry.max.agents", String(AGENTS + 10), "-server.registry.max.regions", String(REGIONS + 10), "-server.mesh.peers.per.region", String(peers)], profilePrefix(SERVER_PROFILE));
  try {
    await waitFor("server ready", 20_000, async () => (await fetch(`http://127.0.0.1:${http}/-/ready`)).ok);
    const post = async (method: string, body: Uint8Array) => {
      const r = await fetch(`http://127.0.0.1:${rpc}/probermesh.v1.ProberMeshService/${method}`, {
        method: "POST", headers: { "content-type": "application/proto", "connect-protocol-version": "1", "accept-encoding": "gzip" }, body,
      });
      const b = new Uint8Array(await r.arrayBuffer());
      if (!r.ok) throw new Error(`${method}: HTTP ${r.status}`);
      return b;
    };
    const agents = Array.from({ length: AGENTS }, (_, i) => ({ region: `r${String(i % REGIONS).padStart(3, "0")}`, ip: `127.${100 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`, version: "bench", udpPort: 7001, tcpPort: 7002 }));
    for (let i = 0; i < AGENTS; i += 50) await Promise.all(agents.slice(i, i + 50).map((agent) => post("Heartbeat", toBinary(HeartbeatRequestSchema, create(HeartbeatRequestSchema, { agent })))));
    await Bun.sleep(2000);
    const pick = (k: number) => agents[(k * 7919) % AGENTS]!;
    const fetchAll = async (known: bigint[] | undefined) => {
      const lat: number[] = [], versions: bigint[] = [];
      let bytes = 0, next = 0;
      const c0 = cpuSeconds(srv.proc.pid!);
      await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
        while (next < FETCHES) {
          const k = next++;
          const t = performance.now();
          const b = await post("GetTargetPool", toBinary(GetTargetPoolRequestSchema, create(GetTargetPoolRequestSchema, { agent: pick(k), knownPoolVersion: known?.[k] ?? 0n })));
          lat.push(performance.now() - t);
          bytes += b.length;
          versions[k] = fromBinary(GetTargetPoolResponseSchema, b).poolVersion;
        }
      }));
      return { cpuMs: ((cpuSeconds(srv.proc.pid!) - c0) * 1000) / FETCHES, lat, bytes, versions };
    };
    const first = await fetchAll(undefined);
    const again = await fetchAll(first.versions);
    return { bin, peers, cpuMs: first.cpuMs, p50: quantile(first.lat, 0.5), p99: quantile(first.lat, 0.99), kb: first.bytes / FETCHES / 1024, unchangedCpuMs: again.cpuMs };
  } finally {
    srv.proc.kill(SERVER_PROFILE ? "SIGTERM" : "SIGKILL"); // SIGTERM: a graceful exit that writes the profile
    await srv.proc.exited;
  }
}

const rows: Row[] = [];
for (const bin of BINS) for (const peers of [0, 2]) rows.push(await run(bin, peers));
console.log(`## Pool answers: ${AGENTS.toLocaleString("en")} agents in ${REGIONS} regions, ${FETCHES} fetches of distinct agents, ${CONCURRENCY} at a time\n`);
console.log("| server | peers per region | server CPU per answer ms | answer p50 / p99 ms | answer KB (decoded) | server CPU per `unchanged` answer ms |");
console.log("|---|---|---|---|---|---|");
for (const r of rows) console.log(`| ${r.bin} | ${r.peers || "all (full mesh)"} | ${r.cpuMs.toFixed(2)} | ${r.p50.toFixed(1)} / ${r.p99.toFixed(1)} | ${r.kb.toFixed(0)} | ${r.unchangedCpuMs.toFixed(2)} |`);
console.log(`\nMachine: ${machine()}.`);
