/**
 * Several servers sharing a Redis registry (docs/scale.md), through the compiled binaries and a
 * real redis-server: agents talking to different servers form one mesh; killing a server moves
 * its agents to the other with nothing lost and they return when it is back; Redis going away
 * leaves the servers serving (and saying so), and they recover when it returns (noticing that Redis
 * lost its data: prober_server_registry_full_resyncs_total{reason="redis_restarted"}).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { PREVIOUS_RELEASE, hasReleaseHistory, releaseBinary } from "./helpers/releases.ts";
import { AGENT_BIN, IS_ROOT, SERVER_BIN, freePort, killAll, run, samples, scrape, skipReason, start, waitFor, type Proc } from "./helpers/procs.ts";

const redisBin = Bun.which("redis-server");
const ok = IS_ROOT && redisBin !== null;
if (!ok) skipReason(`shared_registry.test.ts needs root (ICMP) and redis-server (apt-get install redis-server); root=${IS_ROOT} redis-server=${redisBin}`);

describe.skipIf(!ok)("two servers sharing a Redis registry", () => {
  let redisPort = 0;
  let redis: Proc;
  const servers: { rpc: number; web: number; proc?: Proc }[] = [];
  const agents: Proc[] = [];
  const startRedis = () => start([redisBin!, "--port", String(redisPort), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]);
  const startServer = (i: number) => {
    const s = servers[i]!;
    s.proc = start([SERVER_BIN, "-server.registry.url", `redis://127.0.0.1:${redisPort}/0`, "-server.rpc.listen.addr", `127.0.0.1:${s.rpc}`, "-server.http.listen.addr", `127.0.0.1:${s.web}`, "-server.aggregation.interval", "1s"]);
    return waitFor(`server ${i} ready`, 10_000, async () => (await fetch(`http://127.0.0.1:${s.web}/-/ready`)).ok);
  };
  const metricsOf = (i: number) => scrape(`http://127.0.0.1:${servers[i]!.web}/metrics`);
  const total = (m: Awaited<ReturnType<typeof scrape>>, name: string, labels: Record<string, string> = {}) => samples(m, name, labels).reduce((n, s) => n + Number(s.value), 0);

  beforeAll(async () => {
    redisPort = await freePort();
    redis = startRedis();
    await waitFor("redis ready", 10_000, async () => (await run(["redis-cli", "-p", String(redisPort), "ping"])).stdout.trim() === "PONG");
    for (let i = 0; i < 2; i++) servers.push({ rpc: await freePort(), web: await freePort() });
    await startServer(0);
    await startServer(1);
    const list = (first: number) => [first, 1 - first].map((i) => `127.0.0.1:${servers[i]!.rpc}`).join(",");
    const common = ["-agent.probe.interval", "1s", "-agent.sync.interval", "500ms", "-agent.rpc.failback.interval", "2s"];
    agents.push(start([AGENT_BIN, "-region", "sa", "-agent.ip", "127.0.95.1", "-server.rpc.addr", list(0), ...common]));
    agents.push(start([AGENT_BIN, "-region", "sb", "-agent.ip", "127.0.95.2", "-server.rpc.addr", list(1), ...common]));
  }, 30_000);
  afterAll(killAll);

  test("agents on different servers form one mesh; the sum over both servers gives the loss", async () => {
    // sa's agent talks to server 0 only, sb's to server 1 only; each server's pools hold the other's agent.
    const pools = async (i: number, region: string) => ((await (await fetch(`http://127.0.0.1:${servers[i]!.web}/-/targets`)).json()) as { pools: Record<string, { icmp?: { address: string }[] }> }).pools[region];
    await waitFor("shared pools", 10_000, async () => (await pools(0, "sa"))?.icmp?.some((t) => t.address === "127.0.95.2") && (await pools(1, "sb"))?.icmp?.some((t) => t.address === "127.0.95.1"));
    const [m0, m1] = await waitFor("both directions measured", 20_000, async () => {
      const ms = [await metricsOf(0), await metricsOf(1)];
      return total(ms[0]!, "prober_icmp_packets_sent_total", { source_region: "sa", target_region: "sb" }) > 0 && total(ms[1]!, "prober_icmp_packets_sent_total", { source_region: "sb", target_region: "sa" }) > 0 ? ms : undefined;
    });
    const sum = (name: string) => total(m0!, name) + total(m1!, name);
    expect(sum("prober_icmp_packets_sent_total")).toBeGreaterThan(0);
    expect(1 - sum("prober_icmp_packets_received_total") / sum("prober_icmp_packets_sent_total")).toBe(0);
    expect(total(m0!, "prober_server_reject_points_total") + total(m1!, "prober_server_reject_points_total")).toBe(0);
    // Every server shows every agent alive.
    for (const m of [m0!, m1!]) for (const region of ["sa", "sb"]) expect(samples(m, "prober_agent_is_alive", { region })[0]?.value).toBe("1");
    // Each learnt the other's agent from the change stream after one full read at its start.
    for (const m of [m0!, m1!]) {
      expect(total(m, "prober_server_registry_sync_entries_total")).toBeGreaterThan(0);
      expect(total(m, "prober_server_registry_writes_total")).toBeGreaterThan(0);
      expect(total(m, "prober_server_registry_full_resyncs_total")).toBe(1);
      expect(total(m, "prober_server_registry_full_resyncs_total", { reason: "start" })).toBe(1);
    }
  }, 40_000);

  test("a killed server's agents move to the other with nothing lost, and return when it is back", async () => {
    const before = agents[0]!.output().length;
    await servers[0]!.proc!.kill("SIGKILL");
    await waitFor("sa's agent switched to server 1", 20_000, () => agents[0]!.output().slice(before).includes("switched server"));
    await waitFor("server 1 measures sa -> sb", 20_000, async () => total(await metricsOf(1), "prober_icmp_packets_sent_total", { source_region: "sa", target_region: "sb" }) > 0);
    expect(total(await metricsOf(1), "prober_server_reject_points_total")).toBe(0);
    expect(agents[0]!.output().slice(before)).not.toContain("server rejected results");
    // Back: server 0 restarts and the agent returns to its first server (failback every 2 s here).
    const back = agents[0]!.output().length;
    await startServer(0);
    await waitFor("sa's agent back on server 0", 20_000, () => agents[0]!.output().slice(back).includes("the first server answers again"));
    await waitFor("server 0 measures sa -> sb again", 20_000, async () => total(await metricsOf(0), "prober_icmp_packets_sent_total", { source_region: "sa", target_region: "sb" }) > 0);
  }, 90_000);

  test("Redis away: servers keep serving and say so; Redis back: they recover", async () => {
    await redis.kill("SIGKILL");
    await waitFor("backend down on both", 10_000, async () => (await Promise.all([0, 1].map(metricsOf))).every((m) => samples(m, "prober_server_registry_backend_up")[0]?.value === "0"));
    for (const s of servers) expect(s.proc!.output()).toContain("shared registry (Redis) unreachable");
    const received = total(await metricsOf(1), "prober_server_receive_points_total");
    await waitFor("results still accepted", 10_000, async () => total(await metricsOf(1), "prober_server_receive_points_total") > received);
    for (const region of ["sa", "sb"]) expect(samples(await metricsOf(1), "prober_agent_is_alive", { region })[0]?.value).toBe("1");
    redis = startRedis();
    await waitFor("backend up again on both", 15_000, async () => (await Promise.all([0, 1].map(metricsOf))).every((m) => samples(m, "prober_server_registry_backend_up")[0]?.value === "1"));
    // The servers noticed Redis lost its data and wrote the heartbeats they saw back into the fresh Redis.
    await waitFor("both resynced after the restart", 15_000, async () => (await Promise.all([0, 1].map(metricsOf))).every((m) => total(m, "prober_server_registry_full_resyncs_total", { reason: "redis_restarted" }) >= 1));
    await waitFor("agents shared again", 15_000, async () => Number((await run(["redis-cli", "-p", String(redisPort), "HLEN", "probermesh:agents"])).stdout.trim()) >= 2);
    for (const region of ["sa", "sb"]) for (const i of [0, 1]) expect(samples(await metricsOf(i), "prober_agent_is_alive", { region })[0]?.value).toBe("1");
    expect(total(await metricsOf(0), "prober_server_reject_points_total") + total(await metricsOf(1), "prober_server_reject_points_total")).toBe(0);
  }, 60_000);
});

/** The release before this one, whose servers read and write the hash only. */
const PREVIOUS = PREVIOUS_RELEASE;
const hasPrevious = await hasReleaseHistory([PREVIOUS]);
if (ok && !hasPrevious) skipReason(`shared_registry.test.ts (rolling upgrade) needs the git history of ${PREVIOUS.version} (${PREVIOUS.commit})`);

describe.skipIf(!ok || !hasPrevious)(`a rolling upgrade: a server of ${PREVIOUS.version} and one of this release on one Redis`, () => {
  const web: number[] = [];
  const metricsOf = (i: number) => scrape(`http://127.0.0.1:${web[i]}/metrics`);
  const alive = (m: Awaited<ReturnType<typeof scrape>>, region: string) => samples(m, "prober_agent_is_alive", { region })[0]?.value === "1";

  beforeAll(async () => {
    const oldServer = await releaseBinary(PREVIOUS, "server");
    const redisPort = await freePort();
    start([redisBin!, "--port", String(redisPort), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]);
    await waitFor("redis ready", 10_000, async () => (await run(["redis-cli", "-p", String(redisPort), "ping"])).stdout.trim() === "PONG");
    // Dead after 10 s (2 s x 5): the old server's agent must stay alive at the new one between sweeps.
    const rpc: number[] = [];
    for (const bin of [oldServer, SERVER_BIN]) {
      rpc.push(await freePort());
      web.push(await freePort());
      start([bin, "-server.registry.url", `redis://127.0.0.1:${redisPort}/0`, "-server.rpc.listen.addr", `127.0.0.1:${rpc.at(-1)}`, "-server.http.listen.addr", `127.0.0.1:${web.at(-1)}`, "-server.aggregation.interval", "2s"]);
      await waitFor(`${bin} ready`, 10_000, async () => (await fetch(`http://127.0.0.1:${web.at(-1)}/-/ready`)).ok);
      // Old server first, with its agent, so the new one starts into a registry the old one writes.
      const i = rpc.length - 1;
      start([AGENT_BIN, "-region", `u${i}`, "-agent.ip", `127.0.95.${3 + i}`, "-server.rpc.addr", `127.0.0.1:${rpc[i]}`, "-agent.probe.interval", "1s", "-agent.sync.interval", "500ms"]);
      await waitFor(`agent u${i} registered`, 10_000, async () => alive(await metricsOf(i), `u${i}`));
    }
  }, 120_000);
  afterAll(killAll);

  test("each server shows both agents alive throughout; the new one takes the old one's heartbeats from the hash (unstreamed entries)", async () => {
    await waitFor("both agents alive at both servers", 20_000, async () => (await Promise.all([0, 1].map(metricsOf))).every((m) => alive(m, "u0") && alive(m, "u1")));
    // Two and a half dead-after periods: never declared dead at either server.
    const end = Date.now() + 25_000;
    while (Date.now() < end) {
      const [m0, m1] = await Promise.all([0, 1].map(metricsOf));
      expect({ old: [alive(m0!, "u0"), alive(m0!, "u1")], new: [alive(m1!, "u0"), alive(m1!, "u1")] }).toEqual({ old: [true, true], new: [true, true] });
      await Bun.sleep(500);
    }
    const m1 = await metricsOf(1);
    expect(Number(samples(m1, "prober_server_registry_unstreamed_entries_total")[0]?.value)).toBeGreaterThan(0);
    expect(Number(samples(m1, "prober_server_registry_full_resyncs_total", { reason: "start" })[0]?.value)).toBe(1);
  }, 60_000);
});
