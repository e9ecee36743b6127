/**
 * The web console's JSON API (docs/api.md) through the compiled binaries: the mesh matrix with
 * each pair's baseline, a pair's bounded history and its per-(agent, target) breakdown, HTTP
 * targets with their phases, and the agents.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { startWebMesh, type WebMesh } from "./helpers/mesh.ts";
import { IS_ROOT, killAll, skipReason, waitFor } from "./helpers/procs.ts";

if (!IS_ROOT) skipReason("api.test.ts needs root for the agents' raw ICMP sockets");

describe.skipIf(!IS_ROOT)("/api/v1", () => {
  let base = "";
  let mesh: WebMesh;
  const get = async (path: string) => {
    const r = await fetch(`${base}${path}`);
    return { status: r.status, body: (await r.json()) as Record<string, any> };
  };

  beforeAll(async () => {
    mesh = await startWebMesh([["api-a", "127.0.75.1"], ["api-b", "127.0.75.2"]], ["-server.web.history.retention", "6s"]);
    base = mesh.base;
  });
  afterAll(async () => {
    await killAll();
    mesh?.stop();
  });

  test("mesh: every region, both pairs with loss and RTT, and a baseline once there is history", async () => {
    const { body } = await waitFor("both pairs with a baseline", 20_000, async () => {
      const r = await get("/api/v1/mesh");
      return r.body.pairs.length === 2 && r.body.pairs.every((p: { rtt_baseline_seconds: number | null }) => p.rtt_baseline_seconds !== null) ? r : undefined;
    });
    expect(body.regions).toEqual(["api-a", "api-b"]);
    for (const p of body.pairs) {
      expect(p.loss_ratio).toBe(0);
      expect(p.rtt_mean_seconds).toBeGreaterThan(0);
      expect(p.rtt_min_seconds).toBeLessThanOrEqual(p.rtt_mean_seconds);
      expect(Date.parse(p.window_end)).toBeGreaterThan(0);
    }
  }, 30_000);

  test("pair: history within the retention, and which agent probed which address", async () => {
    const { status, body } = await get("/api/v1/pair?source_region=api-a&target_region=api-b");
    expect(status).toBe(200);
    // Windows that ended within the 6 s retention, 1 s apart: never more than 7 points, oldest first.
    expect(body.history.length).toBeGreaterThanOrEqual(2);
    expect(body.history.length).toBeLessThanOrEqual(7);
    const times = body.history.map((p: { time: string }) => Date.parse(p.time));
    expect([...times].sort((a, b) => a - b)).toEqual(times);
    expect(body.links).toEqual([expect.objectContaining({ agent_ip: "127.0.75.1", address: "127.0.75.2", loss_ratio: 0 })]);
    expect((await get("/api/v1/pair?source_region=api-a")).status).toBe(400);
    expect((await get("/api/v1/pair?source_region=api-a&target_region=nowhere")).status).toBe(404);
  });

  test("http: phases, status code, no failures; agents: both alive", async () => {
    const { body } = await waitFor("the HTTP target from both regions", 15_000, async () => {
      const r = await get("/api/v1/http");
      return r.body.targets.length === 2 ? r : undefined;
    });
    for (const t of body.targets) {
      expect(t.status_code).toBe(200);
      expect(Object.keys(t.phases_seconds).sort()).toEqual(["connect", "processing", "resolve", "tls", "transfer"]);
      expect(t.failed).toEqual({});
      expect(t.cert_expiry_days).toBeNull();
    }
    const agents = (await get("/api/v1/agents")).body.agents;
    expect(agents.map((a: { region: string; alive: boolean }) => `${a.region}:${a.alive}`).sort()).toEqual(["api-a:true", "api-b:true"]);
  });

  test("targets: every check kind with its own phases, ?kind= keeps one; /api/v1/http keeps its 0.4 shape (no kind)", async () => {
    const { body } = await waitFor("http and tcp targets from both regions", 15_000, async () => {
      const r = await get("/api/v1/targets");
      return r.body.targets.length === 4 ? r : undefined;
    });
    const byKind = (k: string) => body.targets.filter((t: { kind: string }) => t.kind === k);
    expect(byKind("http")).toHaveLength(2);
    for (const t of byKind("tcp")) {
      expect(Object.keys(t.phases_seconds).sort()).toEqual(["connect", "resolve", "tls"]);
      expect(t.status_code).toBeUndefined();
      expect(t.failed).toEqual({});
    }
    expect(byKind("tcp")).toHaveLength(2);
    const tcp = (await get("/api/v1/targets?kind=tcp")).body.targets;
    expect(tcp.map((t: { kind: string }) => t.kind)).toEqual(["tcp", "tcp"]);
    expect((await get("/api/v1/http")).body.targets.every((t: object) => !("kind" in t))).toBe(true);
  });
});
