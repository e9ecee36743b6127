/**
 * The latency observer of bench/mesh.ts: a process of its own that measures how long the server
 * takes to answer Heartbeat and GetTargetPool while the fleet (bench/mesh_fleet.ts) loads it.
 *
 * Why a separate process: the fleet speaks for thousands of agents from one event loop, which lags
 * by 0.2-1 s while it encodes pushes and reads pools; a call timed there includes that lag, which
 * no real agent (one process per VM) has. This process does nothing else, so a sample is the
 * server's answer time plus loopback.
 *
 * It calls as agents already registered (indices [0, agents) of simAgents(all, regions), chosen
 * at random): a Heartbeat only refreshes the agent's last-seen time, and a GetTargetPool without
 * known_pool_version gets the agent's whole current pool (what an agent told of a change fetches).
 * Rates are per second, spread evenly; each call is timed from its send to its last answer byte.
 *
 * Usage (bench/mesh.ts starts it once the fleet has registered):
 *   bun run bench/mesh_observer.ts '{"baseUrls":["http://127.0.0.1:9000"],"all":5050,"agents":5000,"regions":500,"heartbeats":20,"pools":2}'
 * Writes one line per answered call to stdout: `heartbeat <epoch ms> <ms>` or `pool <epoch ms> <ms>`
 * (epoch ms = performance.timeOrigin + performance.now() at the send), and `error <rpc> <message>`.
 */
import { create, toBinary } from "@bufbuild/protobuf";
import { GetTargetPoolRequestSchema, HeartbeatRequestSchema } from "../lib/rpc/gen/probermesh/v1/probermesh_pb.ts";
import { unary } from "./mesh_fleet.ts";
import { simAgents } from "./sim.ts";

/** What bench/mesh.ts passes as the one argument (JSON). */
export interface ObserverConfig {
  baseUrls: string[];
  /** Length of the simulated identity list (simAgents(all, regions)). */
  all: number;
  /** Calls go to agents [0, agents): the ones registered. */
  agents: number;
  regions: number;
  /** Heartbeats and pool fetches per second. */
  heartbeats: number;
  pools: number;
}

/** The epoch time of performance.now(), ms: comparable between processes. */
export const epochMs = () => performance.timeOrigin + performance.now();

if (import.meta.main) {
  const c = JSON.parse(process.argv[2] ?? "{}") as ObserverConfig;
  const sim = simAgents(c.all, c.regions);
  const out = (line: string) => process.stdout.write(`${line}\n`);
  const call = async (rpc: "Heartbeat" | "GetTargetPool", body: Uint8Array, server: number) => {
    const at = epochMs();
    try {
      await unary(c.baseUrls[server]!, rpc, body);
      out(`${rpc === "Heartbeat" ? "heartbeat" : "pool"} ${at.toFixed(1)} ${(epochMs() - at).toFixed(2)}`);
    } catch (e) {
      out(`error ${rpc} ${String((e as Error).message ?? e).replace(/\s+/g, " ").slice(0, 120)}`);
    }
  };
  // Agent i talks to server i mod servers, as in the fleet.
  const pick = () => Math.floor(Math.random() * c.agents);
  const every = (perS: number, f: () => void) => perS > 0 && setInterval(f, 1000 / perS);
  every(c.heartbeats, () => {
    const i = pick();
    void call("Heartbeat", toBinary(HeartbeatRequestSchema, create(HeartbeatRequestSchema, { agent: sim[i] })), i % c.baseUrls.length);
  });
  every(c.pools, () => {
    const i = pick();
    void call("GetTargetPool", toBinary(GetTargetPoolRequestSchema, create(GetTargetPoolRequestSchema, { agent: sim[i] })), i % c.baseUrls.length);
  });
}
