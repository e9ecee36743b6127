/**
 * Exactly-once pushes across failover (docs/protocol.md "Batch identity"): two servers sharing a
 * Redis registry in core, an agent in region "rs" with `-agent.rpc.report.addr A,B` and a 2 s
 * failback, two target agents in region "rt". The agent's path to server A is broken with
 * nftables in its own namespace, three ways:
 *
 * 1. refused (TCP reset, as a host whose server is down), twice: the agent moves to B and back;
 * 2. answers lost: only the data packets FROM A's port are dropped, so A receives and counts a push
 *    but the agent never hears the answer; after the RPC deadline (15 s) it sends the same batch
 *    to B, which must answer "duplicate" and count nothing.
 *
 * The ground truth is an nftables counter of the echo requests that actually left the agent's
 * namespace. At every sample during the run (every 400 ms), the packets both servers counted for
 * rs (Σ prober_icmp_packets_sent_total{source_region="rs"} over servers, as increase() adds it
 * up: a server deletes the pair's series 3 s after the agent moved away, and it starts again from
 * 0 when the agent is back; scraped first) never exceed the counter (read after). At the end the agent is stopped with SIGTERM (it pushes what it queued, rounds cut
 * short are not reported), so the two may differ only by the rounds in flight then: at most two
 * rounds per target (packet_count x targets x 2). A batch counted twice adds a whole round per
 * target per duplicate; the old agent pushed twice at every failback.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { CounterTotal, bedAgent, bedRedis, bedServer, createMeshBed, faultBedMissing, logLines, meshProbeFile, total, type BedServer, type MeshBed } from "../helpers/meshbed.ts";
import { dropTcpPort, echoRequestCounter, restore, type EchoCounter } from "../helpers/nft.ts";
import { killAll, skipReason, waitFor, type Proc } from "../helpers/procs.ts";

const missing = await faultBedMissing(["redis-server"]);
if (missing) skipReason(`tests/faults/failover.test.ts ${missing}`);

const REGIONS = { src: "rs", t1: "rt", t2: "rt" } as const;
const PACKETS = 5;
const TARGETS = 2;

describe.skipIf(!!missing)("failover without double counting", () => {
  let bed: MeshBed;
  let a: BedServer;
  let b: BedServer;
  let agent: Proc;
  let echoes: EchoCounter;
  const samplesSeen: string[] = [];
  const violations: string[] = [];

  const sent = new CounterTotal("prober_icmp_packets_sent_total", { source_region: "rs" });
  /** Σ over both servers (scraped first), then the counter: S <= N must always hold. One at a time. */
  let queue: Promise<unknown> = Promise.resolve();
  const sample = (why: string): Promise<{ s: number; n: number; dup: number; dupB: number }> => {
    const next = queue.then(() => sampleNow(why));
    queue = next.catch(() => {});
    return next;
  };
  let sampling = true;
  let sampler: Promise<void> = Promise.resolve();
  const sampleNow = async (why: string) => {
    const [ma, mb] = await Promise.all([a.metrics(), b.metrics()]);
    sent.update("A", ma);
    const s = sent.update("B", mb);
    const n = await echoes.read();
    const dupA = total(ma, "prober_server_reject_points_total", { reason: "duplicate" });
    const dupB = total(mb, "prober_server_reject_points_total", { reason: "duplicate" });
    const dup = dupA + dupB;
    const raw = (m: typeof ma) => m.get("prober_icmp_packets_sent_total")?.find((x) => x.labels.source_region === "rs")?.value ?? "-";
    const line = `${why}: servers counted ${s} (A ${raw(ma)}, B ${raw(mb)}), left the namespace ${n}, duplicates refused ${dup} (A ${dupA}, B ${dupB})`;
    samplesSeen.push(line);
    if (s > n) violations.push(line);
    return { s, n, dup, dupB };
  };
  const sampleFor = async (why: string, ms: number) => {
    const end = Date.now() + ms;
    while (Date.now() < end) {
      await sample(why);
      await Bun.sleep(300);
    }
  };
  /** Samples every 300 ms in the background, so that no expiry of a server's series goes unseen. */
  const background = async () => {
    while (sampling) {
      await sample("background").catch(() => {});
      await Bun.sleep(300);
    }
  };

  beforeAll(async () => {
    bed = await createMeshBed("fo", Object.keys(REGIONS));
    await bedRedis(bed);
    const probes = meshProbeFile(bed, REGIONS, { packet_count: PACKETS, interval: "20ms", timeout: "500ms" });
    const shared = ["-server.registry.url", "redis://127.0.0.1:6379/0", "-server.probe.file", probes];
    a = bedServer(bed, 6000, 6001, shared);
    b = bedServer(bed, 6100, 6101, shared);
    await a.start();
    await b.start();
    // The counter starts before the agent: every echo request it ever sends is counted.
    echoes = await echoRequestCounter(bed.host("src").ns);
    for (const name of ["t1", "t2"] as const) bedAgent(bed, bed.host(name), REGIONS[name], `${a.rpcAddr},${b.rpcAddr}`, ["-agent.rpc.failback.interval", "2s"]);
    agent = bedAgent(bed, bed.host("src"), "rs", `${a.rpcAddr},${b.rpcAddr}`, ["-agent.rpc.failback.interval", "2s"]);
    sampler = background();
    await waitFor("rs -> rt measured on A", 30_000, async () => total(await a.metrics(), "prober_icmp_packets_received_total", { source_region: "rs", target_region: "rt" }) > 2 * PACKETS * TARGETS);
  }, 90_000);
  afterAll(async () => {
    sampling = false;
    await sampler;
    // PMF_LOGS=DIR keeps the processes' logs and every sample for a look after the run.
    const dir = process.env.PMF_LOGS;
    if (dir) {
      await Bun.write(`${dir}/failover-agent.log`, agent?.output() ?? "");
      await Bun.write(`${dir}/failover-a.log`, a?.proc?.output() ?? "");
      await Bun.write(`${dir}/failover-b.log`, b?.proc?.output() ?? "");
      await Bun.write(`${dir}/failover-samples.log`, samplesSeen.join("\n"));
    }
    await killAll();
    await bed?.remove();
  });

  const src = () => bed.host("src");
  const switches = (from: number, to: string) => logLines(agent, from).filter((l) => l.msg === "switched server" && l.server === to);

  test("A refused twice: the agent moves to B and back, nothing counted twice", async () => {
    for (let i = 0; i < 2; i++) {
      const mark = agent.output().length;
      const onB = total(await b.metrics(), "prober_icmp_packets_sent_total", { source_region: "rs" });
      await dropTcpPort(src().ns, a.rpcPort, "refuse", bed.core.ip);
      await waitFor("moved to B", 15_000, () => switches(mark, b.rpcAddr).length > 0);
      await waitFor("B counts rs's pushes", 15_000, async () => total(await b.metrics(), "prober_icmp_packets_sent_total", { source_region: "rs" }) > onB);
      await sampleFor(`refused #${i + 1}, on B`, 2_000);
      await restore(src().ns);
      await waitFor("back on A (failback)", 15_000, () => logLines(agent, mark).some((l) => l.msg === "switched server" && l.server === a.rpcAddr));
      await sampleFor(`refused #${i + 1}, back on A`, 3_000);
    }
    expect(violations).toEqual([]);
  }, 90_000);

  test("answers lost: A counts a push the agent never hears of, B refuses the resend as a duplicate", async () => {
    const mark = agent.output().length;
    const before = await sample("before answers lost");
    await dropTcpPort(src().ns, a.rpcPort, "answers", bed.core.ip);
    try {
      const t0 = Date.now();
      // The RPC deadline is 15 s: then the agent gives up on A and sends the same batch to B.
      await waitFor("moved to B after the deadline", 40_000, async () => {
        await sample("answers lost");
        return switches(mark, b.rpcAddr).length > 0;
      });
      console.log(`answers lost: moved to B after ${Date.now() - t0} ms`);
      // The resend goes to B, which answers "duplicate" at once: the agent hears it. (Generous: an
      // agent whose retry of a timed-out push goes back to A loses another 15 s there.)
      const dup = await waitFor("B refuses the resend as a duplicate", 45_000, async () => {
        const x = await sample("answers lost, on B");
        return x.dupB > before.dupB ? x : undefined;
      });
      expect(dup.dupB).toBeGreaterThan(0);
      await waitFor("the agent heard that the batch was a duplicate", 10_000, () => logLines(agent, mark).some((l) => /had this batch already/.test(String(l.msg))));
    } finally {
      await restore(src().ns);
    }
    await waitFor("back on A", 15_000, () => logLines(agent, mark).some((l) => l.msg === "switched server" && l.server === a.rpcAddr));
    await sampleFor("answers restored, on A", 3_000);
    expect(violations).toEqual([]);
  }, 120_000);

  test("at the end (SIGTERM): the servers counted every echo that left, once; at most the rounds in flight missing", async () => {
    agent.proc.kill("SIGTERM");
    expect(await agent.exited).toBe(0);
    expect(logLines(agent).some((l) => l.msg === "deregistered")).toBe(true);
    sampling = false;
    await sampler;
    const last = await sample("after SIGTERM");
    console.log(samplesSeen.filter((_, i) => i % 25 === 0).concat(samplesSeen.at(-1)!).join("\n"));
    expect(violations).toEqual([]);
    expect(last.s).toBeLessThanOrEqual(last.n);
    expect(last.n - last.s).toBeLessThanOrEqual(PACKETS * TARGETS * 2);
    // The run did exercise the counting: many rounds on both servers.
    expect(last.s).toBeGreaterThan(PACKETS * TARGETS * 20);
  }, 30_000);
});
