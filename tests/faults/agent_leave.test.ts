/**
 * How an agent goes away decides what the mesh reads (docs/protocol.md, docs/aggregation.md):
 *
 * - stopped with SIGTERM or SIGINT (a planned scale-in): it pushes what it queued, says goodbye
 *   (Deregister), logs "deregistered" and exits 0 within a few seconds. Its region's pairs leave
 *   the pools at once, the other agents stop probing it within a heartbeat (pool_version), its
 *   prober_agent_is_alive series goes, and no loss towards it is ever published, even though its
 *   host is gone right after (the namespace is cut off as a deleted VM would be).
 * - stopped while the server is unreachable: it still exits 0, within -agent.shutdown.timeout
 *   (5 s) and a margin, saying what it could not deliver.
 * - killed with SIGKILL on a live host (a crash): it stays a target; its kernel still answers
 *   pings, so the loss to it stays 0, prober_agent_is_alive reads 0, and no pair is inferred.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { bedAgent, bedServer, createMeshBed, faultBedMissing, gauge, logLines, meshProbeFile, type BedServer, type MeshBed } from "../helpers/meshbed.ts";
import { cut, dropTcpPort, restore } from "../helpers/nft.ts";
import { killAll, samples, skipReason, waitFor, type Proc, type Sample } from "../helpers/procs.ts";

const missing = await faultBedMissing();
if (missing) skipReason(`tests/faults/agent_leave.test.ts ${missing}`);

type Metrics = Map<string, Sample[]>;
const REGIONS = { a1: "r1", b1: "r2", c1: "r3", d1: "r4", e1: "r5" } as const;
type Host = keyof typeof REGIONS;

describe.skipIf(!!missing)("agents going away", () => {
  let bed: MeshBed;
  let server: BedServer;
  const agents = {} as Record<Host, Proc>;
  const loss = (m: Metrics, s: string, t: string) => gauge(m, "prober_icmp_packet_loss_rate", { source_region: s, target_region: t });
  const pools = async () => (await server.json<{ pools: Record<string, { icmp?: { address: string }[] }> }>("/-/targets")).pools;
  const poolHas = (p: Awaited<ReturnType<typeof pools>>, region: string, ip: string) => (p[region]?.icmp ?? []).some((t) => t.address === ip);

  beforeAll(async () => {
    bed = await createMeshBed("leave", Object.keys(REGIONS));
    // Only r1 (whose agent never leaves) gets a file block: a file target would stay in the pools.
    server = bedServer(bed, 6000, 6001, ["-server.probe.file", meshProbeFile(bed, { a1: "r1" })]);
    await server.start();
    for (const h of bed.hosts) agents[h.name as Host] = bedAgent(bed, h, REGIONS[h.name as Host], server.rpcAddr);
    const regions = Object.values(REGIONS);
    await waitFor("the full mesh at loss 0", 30_000, async () => {
      const m = await server.metrics();
      return regions.every((s) => regions.every((t) => s === t || loss(m, s, t) === 0));
    });
  }, 90_000);
  afterAll(async () => {
    await killAll();
    await bed?.remove();
  });

  /** Stops `host`'s agent with `signal`, cuts its namespace off once it exited, and checks that it left cleanly. */
  const planned = async (host: Host, signal: "SIGTERM" | "SIGINT") => {
    const h = bed.host(host);
    const region = REGIONS[host];
    const p = agents[host];
    const others = (Object.keys(REGIONS) as Host[]).filter((o) => o !== host && agents[o].proc.exitCode === null);
    const marks = Object.fromEntries(others.map((o) => [o, agents[o].output().length]));
    const serverMark = server.proc!.output().length;
    const t0 = Date.now();
    p.proc.kill(signal);
    const code = await Promise.race([p.exited, Bun.sleep(15_000).then(() => "still running after 15 s")]);
    const tookMs = Date.now() - t0;
    // The host goes away with it (a deleted VM): anything still probing it would lose everything.
    await cut(h.ns);
    console.log(`${signal}: exit ${code} after ${tookMs} ms`);
    expect(code).toBe(0);
    expect(tookMs).toBeLessThan(10_000);
    expect(logLines(p).some((l) => l.msg === "deregistered")).toBe(true);
    expect(server.proc!.output().slice(serverMark)).toContain("said goodbye");

    // At once: out of every pool, no alive series.
    const after = await pools();
    for (const r of Object.values(REGIONS)) expect(poolHas(after, r, h.ip)).toBe(false);
    expect(samples(await server.metrics(), "prober_agent_is_alive", { ip: h.ip })).toEqual([]);
    // The other agents learn it within a heartbeat (1 s here) through pool_version, not at their next sync only.
    await waitFor("every other agent stopped probing it", 5_000, () =>
      others.every((o) => logLines(agents[o], marks[o]).some((l) => l.msg === "target pool updated" && Number(l.stopped) >= 1)));

    // No loss towards it is ever published, and its pairs expire (ratio x interval = 3 s).
    const wrong: string[] = [];
    const until = Date.now() + 8_000;
    let gone = false;
    while (Date.now() < until) {
      const m = await server.metrics();
      for (const s of samples(m, "prober_icmp_packet_loss_rate", { target_region: region })) if (Number(s.value) >= 0.01) wrong.push(`${Date.now() - t0} ms: loss ${s.labels.source_region}->${region} = ${s.value}`);
      for (const s of samples(m, "prober_icmp_pair_inferred")) if (s.value !== "0") wrong.push(`${Date.now() - t0} ms: inferred ${s.labels.source_region}->${s.labels.target_region}`);
      gone = samples(m, "prober_icmp_packet_loss_rate", { target_region: region }).length === 0 && samples(m, "prober_icmp_packet_loss_rate", { source_region: region }).length === 0;
      await Bun.sleep(250);
    }
    expect(wrong).toEqual([]);
    expect(gone).toBe(true);
    // Nothing any agent pushed about it was counted as loss: rounds in flight when it left are
    // dropped as target_left, none is rejected as not_assigned (which agents would warn about).
    const m = await server.metrics();
    console.log(`after ${signal}: dropped as target_left ${samples(m, "prober_server_reject_points_total", { reason: "target_left" }).reduce((n, s) => n + Number(s.value), 0)}`);
    const notAssigned = samples(m, "prober_server_reject_points_total", { reason: "not_assigned" }).reduce((n, s) => n + Number(s.value), 0);
    if (notAssigned) console.log(logLines(server.proc!, 0).filter((l) => l.msg === "rejected pushed results" || l.msg?.includes("goodbye") || l.msg?.includes("left")).map((l) => JSON.stringify(l)).join("\n"));
    expect(notAssigned).toBe(0);
  };

  test("SIGTERM: queued results pushed, goodbye, exit 0; its pairs leave at once and no loss is reported", () => planned("c1", "SIGTERM"), 60_000);

  test("SIGINT: the same", () => planned("d1", "SIGINT"), 60_000);

  test("SIGKILL on a live host: still a target, loss to it 0, alive 0, nothing inferred", async () => {
    const h = bed.host("b1");
    await agents.b1.kill("SIGKILL");
    const t0 = Date.now();
    await waitFor("its agent declared dead", 15_000, async () => gauge(await server.metrics(), "prober_agent_is_alive", { ip: h.ip }) === 0);
    const wrong: string[] = [];
    const until = Date.now() + 8_000;
    while (Date.now() < until) {
      const m = await server.metrics();
      if (loss(m, "r1", "r2") !== 0) wrong.push(`${Date.now() - t0} ms: loss r1->r2 = ${loss(m, "r1", "r2")}`);
      if (gauge(m, "prober_agent_is_alive", { ip: h.ip }) !== 0) wrong.push(`${Date.now() - t0} ms: alive = ${gauge(m, "prober_agent_is_alive", { ip: h.ip })}`);
      for (const s of samples(m, "prober_icmp_pair_inferred")) if (s.value !== "0") wrong.push(`${Date.now() - t0} ms: inferred ${s.labels.source_region}->${s.labels.target_region}`);
      if (!poolHas(await pools(), "r1", h.ip)) wrong.push(`${Date.now() - t0} ms: no longer in r1's pool`);
      await Bun.sleep(500);
    }
    expect(wrong).toEqual([]);
    const agentsJson = (await server.json<{ agents: { ip: string; alive: boolean }[] }>("/api/v1/agents")).agents;
    expect(agentsJson.find((a) => a.ip === h.ip)?.alive).toBe(false);
  }, 60_000);

  test("SIGTERM while the server is unreachable: exit 0 within the shutdown timeout, saying what was not delivered", async () => {
    const h = bed.host("e1");
    const p = agents.e1;
    await dropTcpPort(h.ns, server.rpcPort, "both", bed.core.ip);
    await Bun.sleep(2_500); // a couple of pushes fail and queue
    const mark = p.output().length;
    const t0 = Date.now();
    p.proc.kill("SIGTERM");
    const code = await Promise.race([p.exited, Bun.sleep(20_000).then(() => "still running after 20 s")]);
    const tookMs = Date.now() - t0;
    await restore(h.ns);
    console.log(`SIGTERM, server unreachable: exit ${code} after ${tookMs} ms`);
    expect(code).toBe(0);
    expect(tookMs).toBeLessThan(5_000 + 3_000);
    const said = logLines(p, mark).map((l) => l.msg ?? "");
    expect(said.some((m) => /left unsent|goodbye \(Deregister\) failed|shutdown incomplete/.test(m))).toBe(true);
    expect(said).not.toContain("deregistered");
  }, 60_000);
});
