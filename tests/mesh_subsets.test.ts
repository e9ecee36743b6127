/**
 * Peer subsets through the compiled binaries (-server.mesh.peers.per.region 1): two servers on
 * one real redis-server hand out the same pools; what the agents probe (/api/v1/pair's links) is
 * exactly what they were given; a region of one agent covers every agent of the others; a join
 * changes only pairs that involve the joiner; a SIGKILLed agent stays a target and the agents it
 * covered are covered by a live agent of its region. Real ICMP on 127.0.21.x.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { AGENT_BIN, IS_ROOT, SERVER_BIN, freePort, killAll, samples, scrape, sharedHostAgentFlags, skipReason, start, waitFor, type Proc } from "./helpers/procs.ts";

const redisBin = Bun.which("redis-server");
const ok = IS_ROOT && redisBin !== null;
if (!ok) skipReason(`mesh_subsets.test.ts needs root (ICMP) and redis-server (apt-get install redis-server); root=${IS_ROOT} redis-server=${redisBin}`);

/** Region sa has one agent, sb and sc three: N = 1 leaves most pairs out. Agents of sc talk to the second server. */
const AGENTS = [
  { region: "sa", ip: "127.0.21.1" },
  { region: "sb", ip: "127.0.21.11" }, { region: "sb", ip: "127.0.21.12" }, { region: "sb", ip: "127.0.21.13" },
  { region: "sc", ip: "127.0.21.21" }, { region: "sc", ip: "127.0.21.22" }, { region: "sc", ip: "127.0.21.23" },
];
type A = (typeof AGENTS)[number];
const JOINER: A = { region: "sc", ip: "127.0.21.24" };
const serverOf = (a: A) => (a.region === "sc" ? 1 : 0);

describe.skipIf(!ok)("peer subsets through the binaries (two servers, one Redis)", () => {
  const web: number[] = [];
  let rpc: number[] = [];
  const procs = new Map<string, Proc>();
  const url = (i: number, path: string) => `http://127.0.0.1:${web[i]}${path}`;
  /** One agent's icmp pool on server i, as `region/address`. */
  const poolOf = async (i: number, a: A): Promise<string[] | undefined> => {
    const r = await fetch(url(i, `/-/targets?region=${a.region}&ip=${a.ip}`));
    if (!r.ok) return undefined;
    const j = (await r.json()) as { pool: { icmp?: { targetRegion: string; address: string }[] } };
    return (j.pool.icmp ?? []).map((t) => `${t.targetRegion}/${t.address}`).sort();
  };
  const pairsOf = async (i: number, agents: A[]) => {
    const out = new Set<string>();
    for (const a of agents) for (const t of (await poolOf(i, a)) ?? []) out.add(`${a.region}/${a.ip}>${t}`);
    return out;
  };
  const startAgent = (a: A, i: number) =>
    procs.set(a.ip, start([AGENT_BIN, "-region", a.region, "-agent.ip", a.ip, "-server.rpc.addr", `127.0.0.1:${rpc[serverOf(a)]}`, "-agent.probe.interval", "1s", "-agent.sync.interval", "500ms", ...sharedHostAgentFlags(i)]));
  /** Both servers know `agents` (live) and hand each the same pool. */
  const agreed = (agents: A[]) => waitFor(`both servers agree on the pools of ${agents.length} agents`, 20_000, async () => {
    for (const a of agents) {
      const [p0, p1] = [await poolOf(0, a), await poolOf(1, a)];
      if (!p0 || !p1 || JSON.stringify(p0) !== JSON.stringify(p1)) return false;
    }
    for (const i of [0, 1]) {
      const m = await scrape(url(i, "/metrics"));
      if (!agents.every((a) => samples(m, "prober_agent_is_alive", { region: a.region, ip: a.ip })[0]?.value === "1")) return false;
    }
    return true;
  });

  beforeAll(async () => {
    const redisPort = await freePort();
    start([redisBin!, "--port", String(redisPort), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]);
    rpc = [await freePort(), await freePort()];
    web.push(await freePort(), await freePort());
    for (const i of [0, 1]) {
      start([SERVER_BIN, "-server.registry.url", `redis://127.0.0.1:${redisPort}/0`, "-server.rpc.listen.addr", `127.0.0.1:${rpc[i]}`, "-server.http.listen.addr", `127.0.0.1:${web[i]}`,
        "-server.aggregation.interval", "1s", "-server.series.cache.ratio", "3", "-server.mesh.peers.per.region", "1"]);
      await waitFor(`server ${i} ready`, 10_000, async () => (await fetch(url(i, "/-/ready"))).ok);
    }
    AGENTS.forEach((a, i) => startAgent(a, i));
    await agreed(AGENTS);
  }, 60_000);
  afterAll(killAll);

  test("both servers hand out the same pools: a lone agent covers every agent, the others get 1 per region plus what they cover, less than the full mesh", async () => {
    const j = (await (await fetch(url(0, "/-/targets"))).json()) as { peers_per_region: number; pools: Record<string, unknown>; pools_omitted?: string };
    expect(j.peers_per_region).toBe(1);
    expect(Object.keys(j.pools).sort()).toEqual(["sa", "sb", "sc"]);
    expect(j.pools_omitted).toBeUndefined();
    // One region's whole candidate pool; unknown agents and regions are a clear 404.
    const region = (await (await fetch(url(0, "/-/targets?region=sa"))).json()) as { pool: { icmp: unknown[] } };
    expect(region.pool.icmp).toHaveLength(AGENTS.length - 1);
    for (const q of ["region=zz", "region=sa&ip=127.0.0.9", "ip=127.0.21.1"]) {
      const r = await fetch(url(0, `/-/targets?${q}`));
      expect(r.status, q).toBe(404);
      expect(((await r.json()) as { error: string }).error).toMatch(/no (known agent|live agent)/);
    }
    const sa = (await poolOf(0, AGENTS[0]!))!;
    expect(sa).toEqual(AGENTS.slice(1).map((a) => `${a.region}/${a.ip}`).sort());
    const pairs = await pairsOf(0, AGENTS);
    for (const t of AGENTS) {
      for (const region of ["sa", "sb", "sc"].filter((r) => r !== t.region)) {
        const probers = AGENTS.filter((s) => s.region === region && pairs.has(`${s.region}/${s.ip}>${t.region}/${t.ip}`));
        expect(probers.length, `${t.region}/${t.ip} probed from ${region}`).toBeGreaterThanOrEqual(1);
      }
    }
    for (const s of AGENTS.filter((a) => a.region !== "sa")) {
      const own = [...pairs].filter((p) => p.startsWith(`${s.region}/${s.ip}>`));
      for (const region of ["sa", "sb", "sc"].filter((r) => r !== s.region)) expect(own.filter((p) => p.includes(`>${region}/`)).length).toBeGreaterThanOrEqual(1);
    }
    const full = AGENTS.length * AGENTS.length - AGENTS.reduce((n, a) => n + AGENTS.filter((b) => b.region === a.region).length, 0);
    console.log(`pairs probed: ${pairs.size} of the full mesh's ${full}`);
    expect(pairs.size).toBeLessThan(full);
  });

  test("the agents probe exactly their pools: /api/v1/pair's links are the pools' pairs, loss 0", async () => {
    const want = await pairsOf(0, AGENTS);
    const pairs = AGENTS.flatMap((s) => ["sa", "sb", "sc"].filter((t) => t !== s.region).map((t) => [s.region, t] as const));
    const uniq = [...new Map(pairs.map((p) => [p.join(">"), p])).values()];
    // Pools changed while the agents joined one by one, and rounds started with an older pool
    // still land: in steady state (3 polls in a row) every probed link is one the pools give,
    // and over the polls every given one is probed.
    const seen = new Set<string>();
    let clean = 0, extra: string[] = [];
    await waitFor("the probed links are the pools' pairs", 30_000, async () => {
      const now = new Set<string>();
      for (const [s, t] of uniq) {
        const j = (await (await fetch(url(s === "sc" ? 1 : 0, `/api/v1/pair?source_region=${s}&target_region=${t}`))).json()) as { links: { agent_ip: string; address: string }[] };
        for (const l of j.links) now.add(`${s}/${l.agent_ip}>${t}/${l.address}`);
      }
      for (const p of now) seen.add(p);
      extra = [...now].filter((p) => !want.has(p));
      clean = extra.length ? 0 : clean + 1;
      await Bun.sleep(300);
      return clean >= 3 && [...want].every((p) => seen.has(p));
    }).catch((e) => {
      throw new Error(`${e}: links outside the pools in the last poll: ${extra.join(", ")}; given but never seen: ${[...want].filter((p) => !seen.has(p)).join(", ")}`);
    });
    for (const [s, t] of uniq) {
      const m = await scrape(url(s === "sc" ? 1 : 0, "/metrics"));
      expect(Number(samples(m, "prober_icmp_packet_loss_rate", { source_region: s, target_region: t })[0]?.value), `${s}>${t}`).toBe(0);
    }
  }, 60_000);

  test("a join changes only pairs that involve the joiner; a SIGKILLed agent stays a target and what it covered stays covered", async () => {
    const before = await pairsOf(0, AGENTS);
    startAgent(JOINER, AGENTS.length);
    const all = [...AGENTS, JOINER];
    await agreed(all);
    const after = await pairsOf(0, all);
    const j = `${JOINER.region}/${JOINER.ip}`;
    const added = [...after].filter((p) => !before.has(p)), removed = [...before].filter((p) => !after.has(p));
    expect(added.filter((p) => !p.split(">").includes(j))).toEqual([]);
    for (const p of removed) expect(after.has(`${p.split(">")[0]}>${j}`) || p.startsWith(`${JOINER.region}/`), `removed ${p}`).toBe(true);
    console.log(`join: ${added.length} pairs added, ${removed.length} removed, of ${after.size}`);

    // Kill the sb agent that covers the most; its region's other agents take its coverage over.
    const sb = AGENTS.filter((a) => a.region === "sb");
    const victim = sb.map((a) => ({ a, n: [...after].filter((p) => p.startsWith(`sb/${a.ip}>`)).length })).sort((x, y) => y.n - x.n)[0]!.a;
    await procs.get(victim.ip)!.kill("SIGKILL");
    const live = all.filter((a) => a !== victim);
    await waitFor("the killed agent is dead on both servers and the pools agree", 20_000, async () => {
      for (const i of [0, 1]) {
        const m = await scrape(url(i, "/metrics"));
        if (samples(m, "prober_agent_is_alive", { region: victim.region, ip: victim.ip })[0]?.value !== "0") return false;
      }
      for (const a of live) if (JSON.stringify(await poolOf(0, a)) !== JSON.stringify(await poolOf(1, a))) return false;
      return true;
    });
    const now = await pairsOf(0, live);
    for (const t of live.filter((a) => a.region !== "sb")) {
      const probers = sb.filter((s) => s !== victim && now.has(`sb/${s.ip}>${t.region}/${t.ip}`));
      expect(probers.length, `${t.region}/${t.ip} covered from sb after the kill`).toBeGreaterThanOrEqual(1);
    }
    // ... and it is still probed from sa and sc (a dead agent reads red, not missing).
    for (const region of ["sa", "sc"]) expect(live.some((s) => s.region === region && now.has(`${s.region}/${s.ip}>sb/${victim.ip}`)), `sb/${victim.ip} from ${region}`).toBe(true);
  }, 60_000);
});
