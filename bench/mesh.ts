/**
 * Mesh at scale (issue 21): simulated agents speaking the public protocol to the compiled server
 * (dist/server) at 1,000 agents in 100 regions and 5,000 in 500, with the full mesh
 * (-server.mesh.peers.per.region 0) and with peer subsets (N = 2), on one server alone and on two
 * servers sharing a real redis-server (agents split between them). The agents behave as the real
 * one does (bench/mesh_fleet.ts): heartbeats at the interval the server asks, a pool fetch when
 * pool_version changes, one push per aggregation interval with a result per ICMP target.
 *
 * Per configuration: register the agents (500 a second), wait until every one holds the pool of
 * its last heartbeat's version, wait `--pause` s (15) for the server to finish what the
 * registration left, measure `--control` s (10) of heartbeats alone (the control plane),
 * push for one interval to warm up and `--intervals` intervals measured, then register 1 % more
 * agents and wait until every agent has heartbeated since and fetched any changed pool. One row:
 * max agents per pool, results per interval (sum of the pools), server CPU (control plane; with
 * the pushes; projected to every result when not all were pushed) and peak RSS per server, Redis
 * CPU, GetTargetPool p99 (the fetches after the join) and Heartbeat p99 (control and push
 * windows), the share of pre-existing agents' (source, target) pairs that the join changed, and
 * how many of them refetched.
 *
 * Pushes are capped at `--push-rate` results per second (default 20,000, what this 2-core machine
 * takes without a backlog; a full mesh of 5,000 agents is 25 M results per interval, far beyond
 * it): agents push region by region up to the cap, and the server CPU of every result is projected
 * from the measured cost per result ((CPU with pushes − control plane CPU) / results accepted),
 * marked "(projected)" in the table.
 *
 *   npm run bench:mesh                                   # 1,000 × 100 and 5,000 × 500, ~20 min
 *   bun run bench/mesh.ts --quick                        # 1,000 × 100 only, shorter windows
 *   bun run bench/mesh.ts --sizes 5000x100 --peers 3 --servers 2 --only subsets
 *   bun run bench/mesh.ts --server-bin /tmp/old/dist/server   # another build of the server
 *   bun run bench/mesh.ts --only subsets --servers 1 --server-profile /tmp/prof   # servers' CPU profiles
 */
import { fromBinary } from "@bufbuild/protobuf";
import { GetTargetPoolResponseSchema } from "../lib/rpc/gen/probermesh/v1/probermesh_pb.ts";
import { SERVER_BIN, freePort, run as runCmd, samples, scrape, start, waitFor, type Proc } from "../tests/helpers/procs.ts";
import { quantile } from "../tests/helpers/stats.ts";
import { Fleet, retried, type Sample } from "./mesh_fleet.ts";
import type { ObserverConfig } from "./mesh_observer.ts";
import { CpuMeter, machine, peakRssMb, profilePrefix, startRedis } from "./proc_stats.ts";
import { simAgents, simIndex } from "./sim.ts";

// Real agents each hold their own connection; this one process speaks for thousands, and Bun's
// fetch sends at most BUN_CONFIG_MAX_HTTP_REQUESTS (256 by default) at once, queueing the rest in
// the simulator: a heartbeat would wait there behind pushes the server holds. Raised for the run.
if (!process.env.BUN_CONFIG_MAX_HTTP_REQUESTS) {
  const child = Bun.spawn([process.execPath, ...process.argv.slice(1)], { env: { ...process.env, BUN_CONFIG_MAX_HTTP_REQUESTS: "16384" }, stdio: ["inherit", "inherit", "inherit"] });
  process.exit(await child.exited);
}

const argv = process.argv.slice(2);
const opt = (name: string) => (argv.indexOf(`--${name}`) >= 0 ? argv[argv.indexOf(`--${name}`) + 1] : undefined);
const num = (name: string, dflt: number) => Number(opt(name) ?? dflt);
const QUICK = argv.includes("--quick");
const PEERS = num("peers", 2);
const PUSH_RATE = num("push-rate", 20_000);
const CONTROL_S = num("control", QUICK ? 5 : 10);
/** Wait after the fleet settled, before measuring: the server finishes what the registration left (answers, GC), s. */
const PAUSE_S = num("pause", QUICK ? 5 : 15);
const INTERVALS = num("intervals", 1);
/** Agents registered per second at the start. */
const RAMP_PER_S = 500;
/** After the last registration, how long a server sharing the registry may take to see it, ms. */
const SYNC_MARGIN_MS = 3000;
const SIZES: [number, number][] = (opt("sizes") ?? (QUICK ? "1000x100" : "1000x100,5000x500")).split(",").map((s) => s.split("x").map(Number) as [number, number]);
const MODES = opt("only") === "full" ? [0] : opt("only") === "subsets" ? [PEERS] : [0, PEERS];
const SERVERS = opt("servers") ? [num("servers", 1)] : [1, 2];
/**
 * `--server-profile DIR`: each server writes a CPU profile there when it exits (Bun's --cpu-prof;
 * Chrome's DevTools reads it) and logs every garbage collection to DIR/gc.log (JavaScriptCore's
 * BUN_JSC_logGC: `p=` is a pause of the thread, ms).
 */
const SERVER_PROFILE = opt("server-profile");
/** The server binary (`--server-bin`, e.g. one built from another commit for a before/after). */
const BIN = opt("server-bin") ?? SERVER_BIN;

interface Config { agents: number; regions: number; peers: number; servers: number }
interface Row extends Config {
  maxPool: number; meanPool: number; perInterval: number; pushedPerInterval: number;
  control: number[]; withPushes: number[]; projected: number[]; peakMb: number[]; redis?: number;
  poolP99: number;
  /** Heartbeat p99, ms: control plane alone, and while pushing. */
  heartbeatP99: [number, number]; changed: number; refetched: number; notes: string[];
}

const p99 = (xs: number[]) => (xs.length ? quantile(xs, 0.99) : NaN);
const sleep = (ms: number) => Bun.sleep(Math.max(0, ms));
/** Polls `ok` every 200 ms until it holds or `timeoutMs` passes. @returns whether it held */
async function until(timeoutMs: number, ok: () => boolean): Promise<boolean> {
  const end = performance.now() + timeoutMs;
  while (!ok()) {
    if (performance.now() > end) return false;
    await Bun.sleep(200);
  }
  return true;
}

/** Pairs in one sorted pool and not the other (added + removed). */
function changedPairs(a: Int32Array, b: Int32Array): number {
  let i = 0, j = 0, same = 0;
  while (i < a.length && j < b.length) {
    if (a[i] === b[j]) (same++, i++, j++);
    else if (a[i]! < b[j]!) i++;
    else j++;
  }
  return a.length + b.length - 2 * same;
}

/** Observer calls per second while it runs (bench/mesh_observer.ts): ~4 % of 5,000 agents' heartbeats. */
const OBSERVER_RATES = { heartbeats: 20, pools: 2 };

/**
 * Starts the latency observer (bench/mesh_observer.ts, its own process) against `baseUrls`.
 * Its samples arrive as it answers, with times on this process's performance.now() clock (ms).
 */
function observer(config: Omit<ObserverConfig, "heartbeats" | "pools">) {
  const proc = Bun.spawn([process.execPath, `${import.meta.dir}/mesh_observer.ts`, JSON.stringify({ ...config, ...OBSERVER_RATES })], { stdout: "pipe", stderr: "inherit" });
  const heartbeats: Sample[] = [], pools: Sample[] = [], errors = new Map<string, number>();
  const read = (async () => {
    let rest = "";
    for await (const chunk of proc.stdout) {
      const lines = (rest + new TextDecoder().decode(chunk)).split("\n");
      rest = lines.pop()!;
      for (const line of lines) {
        const [kind, a, b] = line.split(" ");
        if (kind === "heartbeat" || kind === "pool") (kind === "pool" ? pools : heartbeats).push([Number(a) - performance.timeOrigin, Number(b)]);
        else if (kind === "error" && (errors.size < 16 || errors.has(line.slice(6, 60)))) errors.set(line.slice(6, 60), (errors.get(line.slice(6, 60)) ?? 0) + 1);
      }
    }
  })();
  return { heartbeats, pools, errors, stop: async () => (proc.kill(), await proc.exited, await read) };
}

/** Largest lateness of a 50 ms timer in the simulator between start() and stop(), ms (its event loop's lag). */
function lagMeter() {
  let max = 0, last = performance.now();
  const t = setInterval(() => {
    const now = performance.now();
    max = Math.max(max, now - last - 50);
    last = now;
  }, 50);
  return { reset: () => (max = 0), max: () => max, stop: () => clearInterval(t) };
}

/** The servers' prober_server_event_loop_delay_seconds buckets (le -> cumulative count), summed; empty before 0.9. */
async function loopDelay(servers: readonly { web: number }[]): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (const s of servers) for (const x of samples(await scrape(`http://127.0.0.1:${s.web}/metrics`), "prober_server_event_loop_delay_seconds_bucket")) out.set(x.labels.le!, (out.get(x.labels.le!) ?? 0) + Number(x.value));
  return out;
}

/** The bucket bound (ms) under which 99 % of the loop-delay measurements between two loopDelay() reads fell: "≤ X ms". */
function delayP99(from: Map<string, number>, to: Map<string, number>): string {
  const les = [...to.keys()].filter((le) => le !== "+Inf").sort((a, b) => Number(a) - Number(b));
  const total = (to.get("+Inf") ?? 0) - (from.get("+Inf") ?? 0);
  if (!total) return "-";
  for (const le of les) if ((to.get(le)! - (from.get(le) ?? 0)) >= total * 0.99) return `≤ ${Math.round(Number(le) * 1000)} ms`;
  return `> ${Math.round(Number(les.at(-1)) * 1000)} ms`;
}

/** Pool changes the servers have not told every agent of yet (prober_server_pool_refetches_deferred_total, summed; 0 before 0.8). */
async function deferrals(servers: readonly { web: number }[]): Promise<number> {
  let n = 0;
  for (const s of servers) for (const x of samples(await scrape(`http://127.0.0.1:${s.web}/metrics`), "prober_server_pool_refetches_deferred_total")) n += Number(x.value);
  return n;
}

/**
 * Until every agent holds the pool of its last heartbeat's version (`settled`) and no heartbeat
 * answer deferred a pool change for a heartbeat interval (-server.pool.refetch.rate: an agent
 * told its previous version looks settled until it is told). @returns whether it settled in time
 */
async function settle(timeoutMs: number, servers: readonly { web: number }[], settled: () => boolean): Promise<boolean> {
  const end = performance.now() + timeoutMs;
  while (performance.now() < end) {
    if (!(await until(end - performance.now(), settled))) return false;
    const d0 = await deferrals(servers);
    await Bun.sleep(11_000);
    if (settled() && (await deferrals(servers)) === d0) return true;
  }
  return false;
}

async function runConfig(c: Config): Promise<Row> {
  const joiners = Math.ceil(c.agents / 100);
  const sim = simAgents(c.agents + joiners, c.regions);
  const notes: string[] = [];
  const redis = c.servers > 1 ? await startRedis() : undefined;
  const servers: { proc: Proc; rpc: number; web: number }[] = [];
  const lag = lagMeter();
  let fleet: Fleet | undefined;
  let obs: ReturnType<typeof observer> | undefined;
  try {
    for (let k = 0; k < c.servers; k++) {
      const [rpc, web] = [await freePort(), await freePort()];
      const proc = start([
        BIN, "-server.rpc.listen.addr", `127.0.0.1:${rpc}`, "-server.http.listen.addr", `127.0.0.1:${web}`,
        "-server.registry.max.agents", String(sim.length + 10), "-server.registry.max.regions", String(c.regions + 10),
        ...(c.peers > 0 ? ["-server.mesh.peers.per.region", String(c.peers)] : []), ...(redis ? ["-server.registry.url", redis.url] : []),
      ], profilePrefix(SERVER_PROFILE));
      servers.push({ proc, rpc, web });
    }
    for (const s of servers) await waitFor("server ready", 15_000, async () => (await fetch(`http://127.0.0.1:${s.web}/-/ready`)).ok);
    const pids = [...servers.map((s) => s.proc.proc.pid!), ...(redis ? [redis.proc.proc.pid!] : [])];
    const f = (fleet = new Fleet(servers.map((s) => `http://127.0.0.1:${s.rpc}`), sim, (i) => sim[i]!));
    const old = f.agents.slice(0, c.agents);

    // Registration: 500 agents a second, each fetching its pool; settled when every agent holds
    // the pool of a heartbeat answered after the last registration (and the other server's sync).
    const t0 = performance.now();
    for (let i = 0; i < c.agents; i++) f.join(i, (i / RAMP_PER_S) * 1000);
    const timeout = 60_000 + c.agents * 40;
    const registered = await until(timeout, () => old.every((s) => s.hbAt >= 0));
    const lastJoin = performance.now();
    const settled = registered && (await settle(timeout, servers, () => f.settled(old, lastJoin + SYNC_MARGIN_MS)));
    const regS = (performance.now() - t0) / 1000;
    notes.push(`registration: ${settled ? "settled" : "NOT settled"} after ${regS.toFixed(0)} s, ${f.poolFetches.length} pool fetches (p99 ${p99(f.poolFetches.map((x) => x[1])).toFixed(0)} ms), heartbeat p99 ${p99(f.heartbeats.map((x) => x[1])).toFixed(0)} ms`);
    if (!f.firstPool) throw new Error(`no pool fetched: ${[...f.errors].join("; ")}`);
    // The pool reader against the generated decoder, on the first pool fetched.
    const full = fromBinary(GetTargetPoolResponseSchema, f.firstPool.bytes);
    const want = Int32Array.from(full.icmp.map((t) => simIndex(t.address)).filter((i) => i >= 0)).sort();
    if (want.length !== f.firstPool.pool.icmp.length || changedPairs(want, f.firstPool.pool.icmp) !== 0 || full.partial !== f.firstPool.pool.partial) throw new Error("readPool disagrees with fromBinary");

    const sizes = old.map((s) => s.pool?.icmp.length ?? 0);
    const perInterval = sizes.reduce((x, y) => x + y, 0);
    const maxPool = Math.max(...sizes);

    // The control plane alone: heartbeats (and any fetches) for CONTROL_S seconds.
    obs = observer({ baseUrls: servers.map((s) => `http://127.0.0.1:${s.rpc}`), all: sim.length, agents: c.agents, regions: c.regions });
    await sleep(PAUSE_S * 1000);
    const delayC0 = await loopDelay(servers);
    const hbFrom = performance.now();
    let meter = new CpuMeter(pids).start();
    await sleep(CONTROL_S * 1000);
    const control = meter.stop();
    const hbTo = performance.now();
    const delayC1 = await loopDelay(servers);

    // Pushes: agents region by region (agent i is in region i mod regions) up to the cap.
    const cap = (PUSH_RATE * f.aggregationMs) / 1000;
    const pushers: number[] = [];
    let planned = 0;
    for (let r = 0; r < c.regions; r++) {
      for (let i = r; i < c.agents; i += c.regions) {
        if (planned + sizes[i]! > cap) break;
        pushers.push(i);
        planned += sizes[i]!;
      }
      if (planned >= cap * 0.999) break;
    }
    f.startPushes(pushers);
    await sleep(f.aggregationMs); // the first interval creates the series: not measured
    const delay0 = await loopDelay(servers);
    const sim0 = process.cpuUsage();
    lag.reset();
    meter = new CpuMeter(pids).start();
    const m0 = performance.now();
    await sleep(INTERVALS * f.aggregationMs);
    const withPushes = meter.stop();
    const m1 = performance.now();
    const delay1 = await loopDelay(servers);
    const simCores = ((u) => (u.user + u.system) / 1e3 / (m1 - m0))(process.cpuUsage(sim0));
    const simLag = lag.max();
    f.stopPushes();
    const drained = await until(timeout, () => f.inFlight === 0); // pushes in flight land before the counting and the join
    if (!drained) notes.push(`${f.inFlight} pushes still unanswered after ${timeout / 1000} s`);
    const inWindow = f.pushed.filter(([at]) => at >= m0 && at < m1);
    const accepted = inWindow.reduce((x, p) => x + p[1], 0);
    const rejected = f.pushed.reduce((x, p) => x + p[2], 0);
    const pushedPerInterval = accepted / INTERVALS;
    const alone = f.heartbeats.filter(([at]) => at >= hbFrom && at < hbTo).map((x) => x[1]);
    notes.push(`control plane alone: ${((control.slice(0, servers.length).reduce((x, y) => x + y, 0) * (hbTo - hbFrom)) / Math.max(1, alone.length)).toFixed(2)} ms of server CPU per heartbeat; ${alone.length} heartbeats answered (p50 ${alone.length ? quantile(alone, 0.5).toFixed(1) : "-"} ms, max ${alone.length ? Math.max(...alone).toFixed(0) : "-"} ms), ${f.poolFetches.filter(([at]) => at >= hbFrom && at < hbTo).length} pool fetches`);
    const within = (xs: Sample[], from: number, to: number) => xs.filter(([at]) => at >= from && at < to).map((x) => x[1]);
    // The table's latencies are the observer's (its own process); the fleet's include its event loop's lag.
    const heartbeatP99: [number, number] = [p99(within(obs.heartbeats, hbFrom, hbTo)), p99(within(obs.heartbeats, m0, m1))];
    notes.push(`observer (${OBSERVER_RATES.heartbeats} heartbeats and ${OBSERVER_RATES.pools} pool fetches a second, its own process): control plane alone ${within(obs.heartbeats, hbFrom, hbTo).length} heartbeats p99 ${heartbeatP99[0].toFixed(0)} ms, pool p99 ${p99(within(obs.pools, hbFrom, hbTo)).toFixed(0)} ms; with pushes ${within(obs.heartbeats, m0, m1).length} heartbeats p99 ${heartbeatP99[1].toFixed(0)} ms, pool p99 ${p99(within(obs.pools, m0, m1)).toFixed(0)} ms; the fleet saw heartbeat p99 ${fmt([p99(within(f.heartbeats, hbFrom, hbTo)), p99(within(f.heartbeats, m0, m1))], 0)} ms (alone / with pushes, with its own lag)`);
    const scale = pushedPerInterval > 0 ? perInterval / pushedPerInterval : NaN;
    const serverCount = servers.length;
    const projected = withPushes.slice(0, serverCount).map((w, k) => control[k]! + (w - control[k]!) * scale);
    const perResultUs = withPushes.slice(0, serverCount).reduce((x, w, k) => x + (w - control[k]!), 0) * (INTERVALS * f.aggregationMs) * 1000 / Math.max(1, accepted);
    notes.push(`pushes: ${pushers.length} agents of ${new Set(pushers.map((i) => sim[i]!.region)).size} regions pushed ${accepted} results in ${INTERVALS} interval(s) (${rejected} rejected over the run), push p99 ${p99(f.pushes.filter(([at]) => at >= m0 && at < m1).map((x) => x[1])).toFixed(0)} ms; server CPU per result ~${perResultUs.toFixed(1)} µs; simulator ${simCores.toFixed(2)} cores, event-loop lag max ${simLag.toFixed(0)} ms`);

    // 1 % more agents join; every agent then heartbeats and fetches its changed pool.
    const before = old.map((s) => s.pool!.icmp);
    const fetchesBefore = old.map((s) => s.fetches);
    const bytes0 = f.poolBytes, fetches0 = f.poolFetches.length;
    meter = new CpuMeter(pids).start();
    const delayJ0 = await loopDelay(servers);
    const j0 = performance.now();
    for (let k = 0; k < joiners; k++) f.join(c.agents + k, (k / joiners) * 1000);
    const joined = await until(timeout, () => f.agents.every((s) => s.hbAt >= 0));
    const j1 = performance.now();
    const rest = joined && (await settle(timeout, servers, () => f.settled(f.agents, j1 + SYNC_MARGIN_MS)));
    // The servers' CPU while settling, less the control plane's over the same time: the pool answers'.
    const sum = (xs: number[]) => xs.slice(0, servers.length).reduce((x, y) => x + y, 0);
    const joinS = (performance.now() - j0) / 1000;
    const delayJ = await loopDelay(servers);
    const poolCpuS = (sum(meter.stop()) - sum(control)) * joinS;
    const joinFetches = f.poolFetches.length - fetches0;
    notes.push(`after the join: ${joinFetches} pool answers of ${((f.poolBytes - bytes0) / Math.max(1, joinFetches) / 1024).toFixed(0)} KB on average, ${((poolCpuS * 1000) / Math.max(1, joinFetches)).toFixed(1)} ms of server CPU per pool answer (CPU while settling less the control plane's)`);
    let changed = 0;
    for (const [k, s] of old.entries()) changed += changedPairs(before[k]!, s.pool!.icmp);
    const refetched = old.filter((s, k) => s.fetches > fetchesBefore[k]!).length;
    const poolP99 = p99(within(obs.pools, j0, Infinity));
    const joinHb = within(obs.heartbeats, j0, Infinity);
    const joinPools = obs.pools.filter(([at]) => at >= j0);
    const slowest = joinPools.reduce((m, x) => (x[1] > m[1] ? x : m), [j0, 0]);
    notes.push(`observer after the join: ${joinPools.length} pool fetches p50 / p90 / p99 ${[0.5, 0.9, 0.99].map((q) => (joinPools.length ? quantile(joinPools.map((x) => x[1]), q) : NaN).toFixed(0)).join(" / ")} ms (the slowest ${slowest[1].toFixed(0)} ms, sent ${((slowest[0] - j0) / 1000).toFixed(1)} s after the join began), ${joinHb.length} heartbeats p99 ${p99(joinHb).toFixed(0)} ms; the fleet's refetches p99 ${p99(within(f.poolFetches, j0, Infinity)).toFixed(0)} ms (with its own lag)${obs.errors.size ? `; observer errors: ${[...obs.errors].map(([k, n]) => `${n} × ${k}`).join("; ")}` : ""}`);
    notes.push(`server event-loop delay p99 (prober_server_event_loop_delay_seconds): ${delayP99(delayC0, delayC1)} control plane alone, ${delayP99(delay0, delay1)} with pushes, ${delayP99(delayJ0, delayJ)} after the join`);
    notes.push(`join of ${joiners}: ${rest ? "settled" : "NOT settled"} ${((performance.now() - j0) / 1000).toFixed(0)} s after it began; ${refetched} of ${c.agents} agents refetched`);
    // Coverage: every agent is probed by some agent of every other region (the pools after the join).
    const seen = new Uint8Array(sim.length * c.regions);
    for (const s of f.agents) for (const t of s.pool?.icmp ?? []) seen[t * c.regions + (s.i % c.regions)] = 1;
    let missing = 0;
    for (let t = 0; t < sim.length; t++) for (let r = 0; r < c.regions; r++) if (r !== t % c.regions && !seen[t * c.regions + r]) missing++;
    notes.push(missing ? `coverage: ${missing} (agent, other region) pairs with no prober` : "coverage: every agent probed from every other region");
    if (retried.count) notes.push(`${retried.count} calls tried again after a connection error`);
    retried.count = 0;
    if (f.errors.size) notes.push(`errors: ${[...f.errors].map(([k, n]) => `${n} × ${k}`).join("; ")}`);
    return {
      ...c, maxPool, meanPool: perInterval / c.agents, perInterval, pushedPerInterval, control: control.slice(0, serverCount), withPushes: withPushes.slice(0, serverCount), projected,
      peakMb: servers.map((s) => peakRssMb(s.proc.proc.pid!)), redis: redis ? withPushes[serverCount] : undefined,
      poolP99, heartbeatP99, changed: changed / before.reduce((x, b) => x + b.length, 0), refetched, notes,
    };
  } finally {
    await obs?.stop();
    fleet?.stop();
    lag.stop();
    for (const s of servers) await s.proc.kill("SIGTERM"); // a graceful exit (and a CPU profile with BUN_OPTIONS=--cpu-prof)
    await redis?.proc.kill();
  }
}

const fmt = (xs: number[], d: number) => xs.map((x) => x.toFixed(d)).join(" / ");
const int = (x: number) => Math.round(x).toLocaleString("en-US");

const help = await runCmd([BIN, "-h"]);
const hasPeers = `${help.stdout}${help.stderr}`.includes("peers.per.region");
const configs: Config[] = [];
for (const [agents, regions] of SIZES) for (const peers of MODES) for (const servers of SERVERS) configs.push({ agents, regions, peers, servers });
const rows: Row[] = [];
const began = Date.now();
for (const c of configs) {
  if (c.peers > 0 && !hasPeers) {
    console.error(`skipped ${JSON.stringify(c)}: dist/server has no -server.mesh.peers.per.region (rebuild: bun run scripts/build.ts)`);
    continue;
  }
  console.error(`${new Date().toISOString()} ${c.agents} agents × ${c.regions} regions, peers ${c.peers || "all"}, ${c.servers} server(s)`);
  const r = await runConfig(c);
  for (const n of r.notes) console.error(`  ${n}`);
  rows.push(r);
}

console.log(`## Mesh at scale: simulated agents over the public protocol, ${INTERVALS} measured aggregation interval(s) of pushes after one of warm-up, ${CONTROL_S} s of control plane alone ${PAUSE_S} s after the fleet settled\n`);
console.log("| agents | regions | peers per region | servers | max agents per pool | results per interval (pools) | pushed per interval | server CPU cores: control plane / with pushes / at every result | peak RSS MB | Redis CPU cores | GetTargetPool p99 ms | Heartbeat p99 ms: alone / with pushes | pairs changed when 1 % join | agents refetching after the join |");
console.log("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
for (const r of rows) {
  const all = r.pushedPerInterval >= r.perInterval * 0.99;
  const cpu = `${fmt(r.control, 2)}; ${fmt(r.withPushes, 2)}; ${all ? "(all pushed)" : `${fmt(r.projected, 1)} (projected)`}`;
  console.log(`| ${int(r.agents)} | ${r.regions} | ${r.peers || "all (full mesh)"} | ${r.servers} | ${int(r.maxPool)} | ${int(r.perInterval)} | ${all ? "all" : `${int(r.pushedPerInterval)} (${((r.pushedPerInterval / r.perInterval) * 100).toFixed(1)} %)`} | ${cpu} | ${fmt(r.peakMb, 0)} | ${r.redis === undefined ? "-" : r.redis.toFixed(3)} | ${r.poolP99.toFixed(0)} | ${r.heartbeatP99.map((x) => x.toFixed(0)).join(" / ")} | ${(r.changed * 100).toFixed(2)} % | ${int(r.refetched)} |`);
}
console.log(`\nMachine: ${machine()}; bun ${Bun.version}; ${((Date.now() - began) / 60_000).toFixed(1)} min in all. Per-server values are separated by " / ".`);
for (const r of rows) console.log(`\n- ${int(r.agents)} × ${r.regions}, peers ${r.peers || "all"}, ${r.servers} server(s): ${r.notes.join("; ")}`);
process.exit(0);
