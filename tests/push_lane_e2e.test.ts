/**
 * The server's background lane through the compiled server (lib/server/lane.ts; docs/scale.md
 * "The server's thread"): pushes are filed in slices, so a heartbeat that arrives while
 * thousands of results wait is answered before they are filed; when more than
 * -server.push.queue.max.results wait, a push is answered `unavailable` (server busy) and counted,
 * and sent again it counts once: nothing lost, nothing twice; a server kept busy fires
 * ProberMeshServerSaturated (promtool, on its recorded scrapes). Only loopback; target IPs are
 * strings in the registry, never sent to.
 */
import { create, toBinary } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { afterAll, describe, expect, test } from "bun:test";
import { rttBucketCounts } from "../lib/probes/icmp/buckets.ts";
import { IcmpResultSchema } from "../lib/rpc/gen/probermesh/v1/icmp_pb.ts";
import { HeartbeatRequestSchema, PushResultsRequestSchema } from "../lib/rpc/gen/probermesh/v1/probermesh_pb.ts";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { ROOT, SERVER_BIN, freePort, killAll, run, samples, scrape, skipReason, start, waitFor, type Proc } from "./helpers/procs.ts";
import { expectedAlert, inputSeries, metricsRead, readRules, recordScrapes } from "./helpers/recorded.ts";

const redisBin = Bun.which("redis-server");
if (!redisBin) skipReason("push_lane_e2e.test.ts: the failover case needs redis-server (apt-get install redis-server)");
const promtool = Bun.which("promtool");
if (!promtool) skipReason("push_lane_e2e.test.ts: the saturation alert case needs promtool (apt-get install prometheus)");
const RULES = `${ROOT}deploy/prometheus/probermesh.rules.yml`;

const SOURCE = { region: "lane-src", ip: "127.0.95.200", version: "0.9.0" };
const TARGETS = Array.from({ length: 50 }, (_, i) => ({ region: "lane-dst", ip: `127.0.95.${i + 1}`, version: "0.9.0" }));

interface Server { rpc: number; web: number }

async function startServer(extra: string[]): Promise<Server & { proc: Proc }> {
  const [rpc, web] = [await freePort(), await freePort()];
  const proc = start([SERVER_BIN, "-server.rpc.listen.addr", `127.0.0.1:${rpc}`, "-server.http.listen.addr", `127.0.0.1:${web}`, ...extra]);
  await waitFor("server ready", 10_000, async () => (await fetch(`http://127.0.0.1:${web}/-/ready`)).ok);
  return { rpc, web, proc };
}

const post = (s: Server, method: string, body: Uint8Array) =>
  fetch(`http://127.0.0.1:${s.rpc}/probermesh.v1.ProberMeshService/${method}`, { method: "POST", headers: { "Content-Type": "application/proto" }, body });

const heartbeat = async (s: Server, agent: typeof SOURCE) => {
  const r = await post(s, "Heartbeat", toBinary(HeartbeatRequestSchema, create(HeartbeatRequestSchema, { agent })));
  expect(r.status).toBe(200);
  await r.arrayBuffer();
};

/**
 * A push of `rounds` ICMP results per target (10 echoes, all answered in 2 ms), the first batch of
 * agent process `seq` (an agent sends its batches one at a time, in sequence; these go at once).
 */
function pushBody(seq: number, rounds: number): Uint8Array {
  const rtts = Array.from({ length: 10 }, () => 0.002);
  const now = Date.now();
  const icmp = TARGETS.flatMap((t) => Array.from({ length: rounds }, () => create(IcmpResultSchema, {
    targetRegion: t.region, address: t.ip, resolvedIp: t.ip, sent: 10, received: 10, durationSeconds: 0.1,
    minSeconds: 0.002, meanSeconds: 0.002, maxSeconds: 0.002, stddevSeconds: 0, rttBucketCounts: rttBucketCounts(rtts), time: timestampFromMs(now - 1000),
  })));
  return toBinary(PushResultsRequestSchema, create(PushResultsRequestSchema, { agent: SOURCE, icmp, agentInstanceId: `lane-test-${seq}`, batchSequence: 1n, sentTime: timestampFromMs(now) }));
}

const metric = async (s: Server, name: string, labels: Record<string, string> = {}) =>
  samples(await scrape(`http://127.0.0.1:${s.web}/metrics`), name, labels).reduce((n, x) => n + Number(x.value), 0);

afterAll(killAll);

describe("the background lane", () => {
  test("a heartbeat arriving while pushes wait in the lane is answered before they are filed", async () => {
    const s = await startServer([]);
    for (const a of [SOURCE, ...TARGETS]) await heartbeat(s, a);
    const PUSHES = 60, ROUNDS = 50; // 150,000 results: seconds of filing on the 2-core machine
    const bodies = Array.from({ length: PUSHES }, (_, i) => pushBody(i + 1, ROUNDS));
    let answered = 0;
    const pushes = bodies.map((b) => post(s, "PushResults", b).then(async (r) => (await r.arrayBuffer(), answered++, r.status)));
    // Once a fifth of the results wait in the lane (/metrics is answered between slices too), a
    // heartbeat: a second or more of filing is left (a few, as first waited for, could be filed
    // before the heartbeat even arrives: filing takes ~20 µs a result).
    await waitFor("results waiting in the lane", 20_000, async () => (await metric(s, "prober_server_lane_queued_results")) >= (PUSHES * ROUNDS * TARGETS.length) / 5);
    await heartbeat(s, SOURCE);
    const pendingAtHeartbeat = PUSHES - answered;
    const queuedAfter = await metric(s, "prober_server_lane_queued_results");
    expect(await Promise.all(pushes)).toEqual(bodies.map(() => 200));
    console.log(`heartbeat answered with ${pendingAtHeartbeat} of ${PUSHES} pushes unanswered, ${queuedAfter} results still queued after it`);
    expect(pendingAtHeartbeat).toBeGreaterThan(0);
    // Everything filed, once; the lane is empty and its time counted.
    expect(await metric(s, "prober_server_receive_points_total", { prober_type: "icmp" })).toBe(PUSHES * ROUNDS * TARGETS.length);
    expect(await metric(s, "prober_server_lane_queued_results")).toBe(0);
    expect(await metric(s, "prober_server_lane_busy_seconds_total")).toBeGreaterThan(0);
    expect(await metric(s, "prober_server_event_loop_delay_seconds_count")).toBeGreaterThan(0);
  }, 90_000);

  test("past -server.push.queue.max.results a push is answered unavailable (busy), counted, and sent again counts once", async () => {
    const s = await startServer(["-server.push.queue.max.results", "5000"]);
    for (const a of [SOURCE, ...TARGETS]) await heartbeat(s, a);
    const PUSHES = 24, ROUNDS = 40; // 2,000 results a push: a third push beyond 5,000 waits
    const bodies = new Map(Array.from({ length: PUSHES }, (_, i) => [i + 1, pushBody(i + 1, ROUNDS)] as const));
    let refused = 0;
    // As an agent does: keep what was refused and send it again, until every batch is taken.
    for (let round = 0; bodies.size && round < 100; round++) {
      const answers = await Promise.all([...bodies].map(async ([seq, body]) => {
        const r = await post(s, "PushResults", body);
        const text = await r.text();
        return { seq, status: r.status, text };
      }));
      for (const a of answers) {
        if (a.status === 200) bodies.delete(a.seq);
        else {
          expect([a.status, JSON.parse(a.text).code]).toEqual([503, "unavailable"]);
          expect(a.text).toContain("server busy");
          refused++;
        }
      }
    }
    expect(bodies.size).toBe(0);
    expect(refused).toBeGreaterThan(0);
    expect(await metric(s, "prober_server_deferred_pushes_total", { reason: "busy" })).toBe(refused);
    expect(await metric(s, "prober_server_receive_points_total", { prober_type: "icmp" })).toBe(PUSHES * ROUNDS * TARGETS.length);
    expect(await metric(s, "prober_server_reject_points_total", { prober_type: "icmp", reason: "duplicate" })).toBe(0);
    expect(await metric(s, "prober_server_lane_queued_results")).toBe(0);
  }, 90_000);

  test.skipIf(!promtool)("a server kept busy fires ProberMeshServerSaturated in promtool, on its own recorded series; silent before", async () => {
    const s = await startServer(["-server.push.queue.max.results", "5000"]);
    for (const a of [SOURCE, ...TARGETS]) await heartbeat(s, a);
    const rules = readRules(RULES);
    const rule = rules.find((r) => r.alert === "ProberMeshServerSaturated")!;
    // Scrapes every 0.5 s presented as 15 s steps: `for: 5m` is 20 steps, 10 s of flooding.
    const recorder = recordScrapes({ s1: () => scrape(`http://127.0.0.1:${s.web}/metrics`) }, metricsRead([rule]), 500);
    await Bun.sleep(2_000);
    const kFlood = recorder.now();
    // Eight agents' worth of pushes at a time, each sent again until taken (as agents do), for 15 s.
    let seq = 10_000, deferred = 0;
    const until = Date.now() + 15_000;
    await Promise.all(Array.from({ length: 8 }, async () => {
      while (Date.now() < until) {
        const body = pushBody(++seq, 40);
        for (;;) {
          const r = await post(s, "PushResults", body);
          await r.arrayBuffer();
          if (r.status === 200) break;
          deferred++;
        }
      }
    }));
    const kEnd = recorder.now() - 1;
    const steps = await recorder.stop();
    expect(deferred).toBeGreaterThan(0);
    const at = (k: number) => `${k * 15}s`;
    const file = {
      rule_files: [RULES], evaluation_interval: "15s",
      tests: [{
        name: `recorded: pushes flooded from step ${kFlood} to ${kEnd} (${deferred} deferred as busy)`,
        interval: "15s", input_series: inputSeries(steps),
        alert_rule_test: [
          { alertname: "ProberMeshServerSaturated", eval_time: at(kFlood - 1), exp_alerts: [] },
          { alertname: "ProberMeshServerSaturated", eval_time: at(kEnd), exp_alerts: [expectedAlert(rule, { instance: "s1" })] },
        ],
      }],
    };
    const path = `${mkdtempSync(`${tmpdir()}/pm-saturated-`)}/saturated.test.yml`;
    writeFileSync(path, JSON.stringify(file, null, 1));
    const r = await run([promtool!, "test", "rules", path]);
    const said = `${r.stdout}${r.stderr}`;
    if (r.code !== 0) console.log(`promtool test rules ${path}:\n${said.slice(0, 4000)}`);
    expect(said).toContain("SUCCESS");
  }, 90_000);

  test.skipIf(!redisBin)("a server SIGKILLed while batches wait in its lane has not claimed them: resent to the other server (one Redis), they count there", async () => {
    const redisPort = await freePort();
    start([redisBin!, "--port", String(redisPort), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]);
    await waitFor("redis ready", 10_000, async () => (await run(["redis-cli", "-p", String(redisPort), "ping"])).stdout.trim() === "PONG");
    const shared = ["-server.registry.url", `redis://127.0.0.1:${redisPort}/0`];
    const [a, b] = [await startServer(shared), await startServer(shared)];
    for (const s of [a, b]) for (const agent of [SOURCE, ...TARGETS]) await heartbeat(s, agent);
    const PUSHES = 60, ROUNDS = 50, PER_PUSH = ROUNDS * TARGETS.length;
    const bodies = Array.from({ length: PUSHES }, (_, i) => pushBody(1000 + i, ROUNDS));
    const answered = new Set<number>();
    const pushes = bodies.map((body, i) => post(a, "PushResults", body).then(async (r) => (await r.arrayBuffer(), r.status === 200 && answered.add(i)), () => undefined));
    // Many batches waiting in a's lane, then a dies without a word.
    await waitFor("batches waiting in the lane", 20_000, async () => (await metric(a, "prober_server_lane_queued_results")) >= 10 * PER_PUSH);
    await a.proc.kill("SIGKILL");
    await Promise.all(pushes);
    // As agents do: what got no answer goes to the next server.
    const resend = bodies.filter((_, i) => !answered.has(i));
    const statuses = await Promise.all(resend.map(async (body) => (await post(b, "PushResults", body)).status));
    expect(statuses.every((x) => x === 200)).toBe(true);
    const received = await metric(b, "prober_server_receive_points_total", { prober_type: "icmp" });
    const duplicates = await metric(b, "prober_server_reject_points_total", { prober_type: "icmp", reason: "duplicate" });
    console.log(`${answered.size} batches answered by a before it died, ${resend.length} resent to b: ${received / PER_PUSH} counted, ${duplicates / PER_PUSH} duplicates`);
    expect(resend.length).toBeGreaterThanOrEqual(10);
    // At most the one batch a was filing when it died was claimed there (its results died with a).
    expect(duplicates).toBeLessThanOrEqual(PER_PUSH);
    expect(received + duplicates).toBe(resend.length * PER_PUSH);
  }, 90_000);
});
