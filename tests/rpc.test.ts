/**
 * The Connect-RPC surface of the compiled server: curl (JSON over HTTP/1.1), buf curl (binary over
 * h2c), and hostile payloads that must be rejected without creating series or stopping the server.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { VERSION } from "../lib/version.ts";
import { ROOT, SERVER_BIN, freePort, killAll, run, samples, scrape, start, waitFor } from "./helpers/procs.ts";

const SVC = "probermesh.v1.ProberMeshService";
let rpc = 0, web = 0;
const base = () => `http://127.0.0.1:${rpc}/${SVC}`;

beforeAll(async () => {
  const dir = mkdtempSync(`${tmpdir()}/pm-rpc-`);
  writeFileSync(`${dir}/p.yaml`, "prober_configs:\n  - prober_type: icmp\n    region: far\n    targets: [127.0.20.9]\n");
  rpc = await freePort();
  web = await freePort();
  start([SERVER_BIN, "-server.rpc.listen.addr", `127.0.0.1:${rpc}`, "-server.http.listen.addr", `127.0.0.1:${web}`, "-server.probe.file", `${dir}/p.yaml`, "-server.aggregation.interval", "300ms"]);
  await waitFor("server ready", 10_000, async () => (await fetch(`http://127.0.0.1:${web}/-/ready`)).ok);
});
afterAll(killAll);

const curlJson = (method: string, body: unknown, extra: string[] = []) =>
  run(["curl", "-sS", ...extra, "-H", "Content-Type: application/json", "--data-binary", JSON.stringify(body), `${base()}/${method}`]);

describe("Connect protocol", () => {
  test("curl: JSON over HTTP/1.1 and over h2c", async () => {
    for (const extra of [["--http1.1"], ["--http2-prior-knowledge"]]) {
      const r = await curlJson("Heartbeat", { agent: { region: "near", ip: "127.0.20.1", version: "t" } }, extra);
      expect(r.code).toBe(0);
      expect(JSON.parse(r.stdout)).toMatchObject({ serverVersion: VERSION, aggregationInterval: "0.300s" });
    }
    const pool = await curlJson("GetTargetPool", { agent: { region: "near", ip: "127.0.20.1" } });
    expect(JSON.parse(pool.stdout).icmp.map((t: { address: string }) => t.address).sort()).toEqual(["127.0.20.9"]);
  });

  test("buf curl: binary protobuf over h2c", async () => {
    const r = await run([`${ROOT}node_modules/.bin/buf`, "curl", "--schema", `${ROOT}proto`, "--protocol", "connect", "--http2-prior-knowledge", "-d", '{"agent":{"region":"near","ip":"127.0.20.1"}}', `${base()}/GetTargetPool`]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout).icmp[0]).toMatchObject({ targetRegion: "far", address: "127.0.20.9" });
  });
});

describe("hostile payloads", () => {
  test("garbage bytes get a Connect error and the server keeps serving", async () => {
    for (const ct of ["application/proto", "application/json"]) {
      const r = await run(["curl", "-sS", "-w", "\n%{http_code}", "-H", `Content-Type: ${ct}`, "--data-binary", "\x08\xff\xff\xff\xffgarbage{", `${base()}/PushResults`]);
      const [body, status] = r.stdout.trim().split("\n");
      expect(Number(status)).toBeGreaterThanOrEqual(400);
      expect(JSON.parse(body!).code).toBeString();
    }
    expect((await fetch(`http://127.0.0.1:${web}/-/healthy`)).ok).toBe(true);
  });

  test("results for unassigned targets or with impossible values are rejected and create no series", async () => {
    const time = new Date().toISOString();
    // Each push heartbeats first: the agent is dead 1.5 s after its last heartbeat (ratio x 300 ms),
    // which a busy machine can let pass since the first test's heartbeat (FailedPrecondition).
    const push = async () => (await curlJson("Heartbeat", { agent: { region: "near", ip: "127.0.20.1", version: "t" } }), curlJson("PushResults", {
      agent: { region: "near", ip: "127.0.20.1" },
      icmp: [
        { targetRegion: "elsewhere", address: "127.0.20.50", sent: 4, received: 4, rttsSeconds: [0.001, 0.001, 0.001, 0.001], time },
        { targetRegion: "far", address: "127.0.20.9", sent: 2, received: 3, rttsSeconds: [0.1, 0.1, 0.1], time },
        { targetRegion: "far", address: "127.0.20.9", sent: 1, received: 1, rttsSeconds: [-5], time },
        { targetRegion: "far", address: "127.0.20.9", sent: 1, received: 1, rttsSeconds: [0.001], sampleWeight: 1.5, time },
      ],
      http: [{ targetRegion: "far", url: "http://127.0.20.9/", success: true, time }],
    }));
    // In the warm-up after a start (ratio x interval = 1.5 s here) a push naming an unknown agent
    // address is deferred (the agent keeps it), not rejected; after it, it is rejected.
    const first = JSON.parse((await push()).stdout);
    if (first.code) expect(first.code).toBe("unavailable");
    const forged = await waitFor("warm-up over", 10_000, async () => {
      const r = JSON.parse((await push()).stdout);
      return r.code ? undefined : r;
    });
    expect(forged).toMatchObject({ rejected: 5 });
    const bad = await curlJson("PushResults", { agent: { region: "", ip: "not-an-ip" } });
    expect(JSON.parse(bad.stdout).code).toBe("invalid_argument");
    // A valid result for an assigned target is accepted: the check is not rejecting everything.
    const good = await curlJson("PushResults", { agent: { region: "near", ip: "127.0.20.1" }, icmp: [{ targetRegion: "far", address: "127.0.20.9", resolvedIp: "127.0.20.9", sent: 2, received: 2, rttsSeconds: [0.001, 0.003], minSeconds: 0.001, meanSeconds: 0.002, maxSeconds: 0.003, stddevSeconds: 0.001, time: new Date().toISOString() }] });
    expect(JSON.parse(good.stdout)).toMatchObject({ accepted: 1 });
    const m = await waitFor("the good result aggregated", 5000, async () => {
      const m = await scrape(`http://127.0.0.1:${web}/metrics`);
      return samples(m, "prober_icmp_packet_loss_rate", { source_region: "near" }).length ? m : undefined;
    });
    expect(samples(m, "prober_icmp_packet_loss_rate", { source_region: "near", target_region: "far" })[0]!.value).toBe("0");
    expect(Number(samples(m, "prober_icmp_duration_seconds", { source_region: "near", target_region: "far", phase: "rtt" })[0]!.value)).toBeCloseTo(0.002, 9);
    expect(samples(m, "prober_icmp_packet_loss_rate", { target_region: "elsewhere" })).toHaveLength(0);
    expect(samples(m, "prober_http_status_code", { source_region: "near" })).toHaveLength(0);
    expect(Number(samples(m, "prober_server_reject_points_total", { prober_type: "icmp", reason: "not_assigned" })[0]!.value)).toBe(1);
    expect(Number(samples(m, "prober_server_reject_points_total", { prober_type: "icmp", reason: "invalid" })[0]!.value)).toBe(3);
  });
});
