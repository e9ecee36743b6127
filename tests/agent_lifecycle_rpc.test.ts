/**
 * The compiled server's answers to what agents do over their lifetime, spoken over the wire with
 * curl (Connect JSON): batch identity (a resent batch counts once, on one server and across two
 * servers sharing a real Redis), Deregister (a goodbye leaves every pool at once), and a silent
 * agent that stays a mesh target (alive 0) until -server.agent.forget.after.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { SERVER_BIN, freePort, killAll, run, samples, scrape, skipReason, start, waitFor } from "./helpers/procs.ts";

const SVC = "probermesh.v1.ProberMeshService";
const call = async (rpc: number, method: string, body: unknown) => {
  const r = await run(["curl", "-sS", "-H", "Content-Type: application/json", "--data-binary", JSON.stringify(body), `http://127.0.0.1:${rpc}/${SVC}/${method}`]);
  return JSON.parse(r.stdout || "{}") as Record<string, unknown>;
};
const agent = (region: string, ip: string) => ({ region, ip, version: "test", hostname: "h" });
const result = (targetRegion: string, address: string) => ({
  targetRegion, address, resolvedIp: address, sent: 4, received: 4, rttBucketCounts: [0, 0, 0, 0, 0, 4, ...Array(14).fill(0)],
  minSeconds: 0.001, meanSeconds: 0.001, maxSeconds: 0.001, stddevSeconds: 0, time: new Date().toISOString(),
});
const total = (m: Awaited<ReturnType<typeof scrape>>, name: string, labels: Record<string, string> = {}) => samples(m, name, labels).reduce((n, s) => n + Number(s.value), 0);

/** Starts a server (1 s windows, ratio 2: an agent silent for 2 s is dead) and waits until ready. */
async function server(extra: string[] = []): Promise<{ rpc: number; web: number; metrics: () => ReturnType<typeof scrape> }> {
  const [rpc, web] = [await freePort(), await freePort()];
  start([SERVER_BIN, "-server.rpc.listen.addr", `127.0.0.1:${rpc}`, "-server.http.listen.addr", `127.0.0.1:${web}`, "-server.aggregation.interval", "1s", "-server.series.cache.ratio", "2", ...extra]);
  await waitFor("server ready", 10_000, async () => (await fetch(`http://127.0.0.1:${web}/-/ready`)).ok);
  return { rpc, web, metrics: () => scrape(`http://127.0.0.1:${web}/metrics`) };
}

/** Waits out the warm-up (pushes naming unknown agents are deferred in it) by retrying a push until it is answered. */
async function pushWhenWarm(rpc: number, body: unknown): Promise<Record<string, unknown>> {
  return waitFor("push answered after the warm-up", 10_000, async () => {
    const r = await call(rpc, "PushResults", body);
    return r.code === "unavailable" ? undefined : r;
  });
}

afterAll(killAll);

describe("batch identity", () => {
  let s: Awaited<ReturnType<typeof server>>;
  beforeAll(async () => {
    s = await server();
    await call(s.rpc, "Heartbeat", { agent: agent("a", "127.0.61.1") });
    await call(s.rpc, "Heartbeat", { agent: agent("b", "127.0.61.2") });
  });

  test("a batch resent after a lost answer is answered with success and counted once", async () => {
    const batch = { agent: agent("a", "127.0.61.1"), agentInstanceId: "0b8c-test-1", batchSequence: "1", icmp: [result("b", "127.0.61.2")] };
    const first = await pushWhenWarm(s.rpc, batch);
    expect(first).toMatchObject({ accepted: 1 });
    expect(first.duplicate).toBeUndefined();
    const again = await call(s.rpc, "PushResults", batch);
    expect(again).toMatchObject({ duplicate: true });
    expect(again.accepted).toBeUndefined();
    // An older sequence of the same process is a resend too; a newer one counts.
    expect(await call(s.rpc, "PushResults", { ...batch, batchSequence: "2" })).toMatchObject({ accepted: 1 });
    expect(await call(s.rpc, "PushResults", { ...batch, batchSequence: "1" })).toMatchObject({ duplicate: true });
    // Another process of the same agent (a restart) has its own numbers.
    expect(await call(s.rpc, "PushResults", { ...batch, agentInstanceId: "0b8c-test-2" })).toMatchObject({ accepted: 1 });
    // A push without identity (agents before 0.4) always counts.
    const { agentInstanceId: _, batchSequence: __, ...anonymous } = batch;
    expect(await call(s.rpc, "PushResults", anonymous)).toMatchObject({ accepted: 1 });
    const m = await s.metrics();
    expect(total(m, "prober_icmp_packets_sent_total", { source_region: "a" })).toBe(4 * 4);
    expect(total(m, "prober_server_reject_points_total", { prober_type: "icmp", reason: "duplicate" })).toBe(2);
    expect(total(m, "prober_server_receive_points_total", { prober_type: "icmp" })).toBe(4);
  });

  test("hostile identities are refused as invalid_argument, and dropped_points is counted per agent region", async () => {
    const base = { agent: agent("a", "127.0.61.1"), icmp: [result("b", "127.0.61.2")] };
    for (const bad of [{ agentInstanceId: "x".repeat(65), batchSequence: "1" }, { agentInstanceId: "has space", batchSequence: "1" }, { agentInstanceId: "ok", batchSequence: "0" }, { batchSequence: "5" }]) {
      expect((await call(s.rpc, "PushResults", { ...base, ...bad })).code).toBe("invalid_argument");
    }
    expect(await call(s.rpc, "PushResults", { ...base, agentInstanceId: "0b8c-test-3", batchSequence: "1", droppedPoints: "1234" })).toMatchObject({ accepted: 1 });
    // The same batch again (its answer lost) does not count its drops twice.
    await call(s.rpc, "PushResults", { ...base, agentInstanceId: "0b8c-test-3", batchSequence: "1", droppedPoints: "1234" });
    expect(total(await s.metrics(), "prober_agent_dropped_points_total", { region: "a" })).toBe(1234);
  });
});

describe("goodbye and silence", () => {
  test("Deregister removes an agent from every pool at once; a silent agent stays a target, alive 0, until forgotten", async () => {
    const s = await server(["-server.agent.forget.after", "3s"]);
    const pool = async (region: string, ip: string) => ((await call(s.rpc, "GetTargetPool", { agent: agent(region, ip) })).icmp as { address: string }[] | undefined ?? []).map((t) => t.address);
    const beat = (region: string, ip: string) => call(s.rpc, "Heartbeat", { agent: agent(region, ip) });
    await beat("x", "127.0.62.1");
    await beat("y", "127.0.62.2");
    const before = await call(s.rpc, "Heartbeat", { agent: agent("z", "127.0.62.3") });
    expect(await pool("x", "127.0.62.1")).toEqual(["127.0.62.2", "127.0.62.3"]);

    // Goodbye: gone from x's pool at once, its alive series gone, and the pool version moved on.
    expect(await call(s.rpc, "Deregister", { agent: agent("z", "127.0.62.3") })).toEqual({});
    expect(await pool("x", "127.0.62.1")).toEqual(["127.0.62.2"]);
    const after = await beat("x", "127.0.62.1");
    expect(after.poolVersion).not.toBe(before.poolVersion);
    let m = await s.metrics();
    expect(samples(m, "prober_agent_is_alive", { ip: "127.0.62.3" })).toHaveLength(0);
    expect(total(m, "prober_server_agent_goodbyes_total")).toBe(1);

    // Silence: y stops heartbeating while x goes on. y is declared dead (ratio 2 x 1 s) but stays
    // in x's pool, so x's probes of it measure the silence; forgotten 3 s after it died.
    const keepX = setInterval(() => void beat("x", "127.0.62.1"), 300);
    try {
      m = await waitFor("y declared dead", 10_000, async () => {
        const m = await s.metrics();
        return samples(m, "prober_agent_is_alive", { ip: "127.0.62.2" })[0]?.value === "0" ? m : undefined;
      });
      expect(samples(m, "prober_agent_is_alive", { ip: "127.0.62.1" })[0]?.value).toBe("1");
      expect(await pool("x", "127.0.62.1")).toEqual(["127.0.62.2"]);
      // Results about the silent agent are accepted: its silence is a measurement.
      expect(await pushWhenWarm(s.rpc, { agent: agent("x", "127.0.62.1"), icmp: [{ ...result("y", "127.0.62.2"), received: 0, rttBucketCounts: Array(20).fill(0), minSeconds: 0, meanSeconds: 0, maxSeconds: 0 }] })).toMatchObject({ accepted: 1 });
      await waitFor("y forgotten", 15_000, async () => (await pool("x", "127.0.62.1")).length === 0);
      expect(samples(await s.metrics(), "prober_agent_is_alive", { ip: "127.0.62.2" })).toHaveLength(0);
    } finally {
      clearInterval(keepX);
    }
  }, 60_000);
});

const redisBin = Bun.which("redis-server");
if (!redisBin) skipReason("agent_lifecycle_rpc.test.ts: the cross-server test needs redis-server (apt-get install redis-server)");

describe.skipIf(!redisBin)("two servers sharing a Redis registry", () => {
  test("a batch accepted by one server and resent to the other counts once; a goodbye at one server removes the agent at both", async () => {
    const redisPort = await freePort();
    start([redisBin!, "--port", String(redisPort), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]);
    await waitFor("redis ready", 10_000, async () => (await run(["redis-cli", "-p", String(redisPort), "ping"])).stdout.trim() === "PONG");
    const shared = ["-server.registry.url", `redis://127.0.0.1:${redisPort}/0`];
    const [a, b] = [await server(shared), await server(shared)];
    await call(a.rpc, "Heartbeat", { agent: agent("p", "127.0.63.1") });
    await call(b.rpc, "Heartbeat", { agent: agent("q", "127.0.63.2") });
    const poolAt = async (s: { rpc: number }) => ((await call(s.rpc, "GetTargetPool", { agent: agent("p", "127.0.63.1") })).icmp as { address: string }[] | undefined ?? []).map((t) => t.address);
    await waitFor("q known at server a through Redis", 10_000, async () => (await poolAt(a)).includes("127.0.63.2"));
    const poolOfQAtB = async () => ((await call(b.rpc, "GetTargetPool", { agent: agent("q", "127.0.63.2") })).icmp as { address: string }[] | undefined ?? []).map((t) => t.address);
    await waitFor("p known at server b through Redis", 10_000, async () => (await poolOfQAtB()).includes("127.0.63.1"));

    const batch = { agent: agent("p", "127.0.63.1"), agentInstanceId: "shared-1", batchSequence: "7", icmp: [result("q", "127.0.63.2")] };
    expect(await pushWhenWarm(a.rpc, batch)).toMatchObject({ accepted: 1 });
    expect(await pushWhenWarm(b.rpc, batch)).toMatchObject({ duplicate: true });
    const [ma, mb] = [await a.metrics(), await b.metrics()];
    expect(total(ma, "prober_icmp_packets_sent_total") + total(mb, "prober_icmp_packets_sent_total")).toBe(4);
    expect(total(mb, "prober_server_reject_points_total", { reason: "duplicate" })).toBe(1);

    // q says goodbye at b; a learns it from Redis and drops q from p's pool.
    await call(b.rpc, "Deregister", { agent: agent("q", "127.0.63.2") });
    await waitFor("q gone from server a's pool", 10_000, async () => !(await poolAt(a)).includes("127.0.63.2"));
    expect(samples(await a.metrics(), "prober_agent_is_alive", { ip: "127.0.63.2" })).toHaveLength(0);
  }, 60_000);
});
