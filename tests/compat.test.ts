/**
 * Rolling upgrades (docs/protocol.md "Compatibility"): agents of the previous releases, each built
 * from its commit, in one mesh with this release's server and agent. Both directions are measured
 * for each, their HTTP results are aggregated, and nothing they send is rejected.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { PREVIOUS_RELEASE, PREVIOUS_RELEASES, hasReleaseHistory, releaseBinary } from "./helpers/releases.ts";
import { AGENT_BIN, IS_ROOT, SERVER_BIN, freePort, killAll, samples, scrape, sharedHostAgentFlags, skipReason, start, waitFor } from "./helpers/procs.ts";

const hasHistory = await hasReleaseHistory();
const ok = IS_ROOT && hasHistory;
if (!ok) skipReason(`compat.test.ts needs root (ICMP) and the git history of releases ${PREVIOUS_RELEASES.map((r) => `${r.version} (${r.commit})`).join(", ")}; root=${IS_ROOT} history=${hasHistory}`);

describe.skipIf(!ok)(`agents of releases ${PREVIOUS_RELEASES.map((r) => r.version).join(", ")} with this release's server`, () => {
  let metrics = "";
  let web: ReturnType<typeof Bun.serve>;

  beforeAll(async () => {
    const dir = mkdtempSync(`${tmpdir()}/pm-compat-`);
    const bins = new Map<string, string>();
    for (const r of PREVIOUS_RELEASES) bins.set(r.version, await releaseBinary(r, "agent"));
    web = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response("ok") });
    writeFileSync(`${dir}/p.yaml`, `prober_configs:\n  - prober_type: http\n    region: web\n    targets: ["http://127.0.0.1:${web.port}/"]\n`);
    const [rpc, http] = [await freePort(), await freePort()];
    metrics = `http://127.0.0.1:${http}/metrics`;
    start([SERVER_BIN, "-server.probe.file", `${dir}/p.yaml`, "-server.rpc.listen.addr", `127.0.0.1:${rpc}`, "-server.http.listen.addr", `127.0.0.1:${http}`, "-server.aggregation.interval", "1s"]);
    await waitFor("server ready", 10_000, async () => (await fetch(`http://127.0.0.1:${http}/-/ready`)).ok);
    const common = ["-server.rpc.addr", `127.0.0.1:${rpc}`, "-agent.probe.interval", "1s", "-agent.sync.interval", "500ms"];
    // Agents since 0.6 run a UDP responder and a TCP listener: on one host each needs its own ports.
    const ports = (version: string) => (version >= "0.6" ? sharedHostAgentFlags(PREVIOUS_RELEASES.findIndex((r) => r.version === version) + 1) : []);
    for (const r of PREVIOUS_RELEASES) start([bins.get(r.version)!, "-region", r.region, "-agent.ip", r.ip, ...common, ...ports(r.version)]);
    start([AGENT_BIN, "-region", "new", "-agent.ip", "127.0.70.2", ...common, ...sharedHostAgentFlags(0)]);
  }, 120_000);
  afterAll(async () => {
    await killAll();
    web?.stop(true);
  });

  test("both directions measured for each old agent, their HTTP phases published, nothing rejected", async () => {
    const directions = PREVIOUS_RELEASES.flatMap((r) => [[r.region, "new"], ["new", r.region]]);
    const m = await waitFor("old <-> new measured and the old agents' HTTP phases", 30_000, async () => {
      const m = await scrape(metrics);
      const pairs = directions.every(([s, t]) => samples(m, "prober_icmp_duration_seconds", { source_region: s!, target_region: t!, phase: "rtt" }).length === 1);
      return pairs && PREVIOUS_RELEASES.every((r) => samples(m, "prober_http_duration_seconds", { source_region: r.region, phase: "processing" }).length === 1) ? m : undefined;
    });
    for (const [s, t] of directions) expect({ s, t, loss: samples(m, "prober_icmp_packet_loss_rate", { source_region: s!, target_region: t! })[0]!.value }).toEqual({ s, t, loss: "0" });
    for (const r of PREVIOUS_RELEASES) {
      expect(samples(m, "prober_agent_is_alive", { region: r.region, version: r.version })[0]!.value).toBe("1");
      expect(Number(samples(m, "prober_icmp_packets_sent_total", { source_region: r.region, target_region: "new" })[0]!.value)).toBeGreaterThan(0);
    }
    for (const s of samples(m, "prober_server_reject_points_total")) expect({ ...s.labels, value: s.value }).toEqual({ ...s.labels, value: "0" });
    // Old agents fetch whole pools; this release's refreshes its pool (every 500 ms here) by the
    // version it holds and gets short answers while nothing changed.
    const answers = await waitFor("a refresh answered `unchanged`", 10_000, async () => {
      const a = Object.fromEntries(samples(await scrape(metrics), "prober_server_pool_answers_total").map((s) => [s.labels.answer!, Number(s.value)]));
      return a.unchanged! > 0 ? a : undefined;
    });
    expect(answers.full).toBeGreaterThan(PREVIOUS_RELEASES.length);
  }, 40_000);

  test("udp between the 0.6.0 agent and this release's, both ways: the old responder answers the new prober (no reflector count: round trips only) and the other way round", async () => {
    // An incompatible responder never answers (loss 1, nothing received). One window of a loaded
    // 2-core machine can lose a late answer, so the test waits for a window without loss each way.
    await waitFor("udp v060 <-> new answered, a window without loss each way", 30_000, async () => {
      const m = await scrape(metrics);
      const state = (["v060", "new"] as const).map((s) => {
        const t = s === "new" ? "v060" : "new";
        const labels = { source_region: s, target_region: t };
        return { s, t, received: Number(samples(m, "prober_udp_packets_received_total", labels)[0]?.value ?? 0), loss: samples(m, "prober_udp_packet_loss_rate", labels)[0]?.value };
      });
      if (state.every((d) => d.received > 0 && d.loss === "0")) return true;
      throw new Error(JSON.stringify(state));
    });
  }, 40_000);
});

describe.skipIf(!ok)(`this release's agents with a server of release ${PREVIOUS_RELEASE.version} (agents upgraded first)`, () => {
  let metrics = "";
  beforeAll(async () => {
    const server = await releaseBinary(PREVIOUS_RELEASE, "server");
    const [rpc, http] = [await freePort(), await freePort()];
    metrics = `http://127.0.0.1:${http}/metrics`;
    start([server, "-server.rpc.listen.addr", `127.0.0.1:${rpc}`, "-server.http.listen.addr", `127.0.0.1:${http}`, "-server.aggregation.interval", "1s"]);
    await waitFor("old server ready", 10_000, async () => (await fetch(`http://127.0.0.1:${http}/-/ready`)).ok);
    const common = ["-server.rpc.addr", `127.0.0.1:${rpc}`, "-agent.probe.interval", "1s", "-agent.sync.interval", "500ms"];
    start([AGENT_BIN, "-region", "a", "-agent.ip", "127.0.71.1", ...common, ...sharedHostAgentFlags(0)]);
    start([AGENT_BIN, "-region", "b", "-agent.ip", "127.0.71.2", ...common, ...sharedHostAgentFlags(1)]);
  }, 120_000);
  afterAll(killAll);

  test("the new fields are ignored by the old server: everything accepted, both directions measured", async () => {
    const m = await waitFor("a <-> b measured by the old server", 30_000, async () => {
      const m = await scrape(metrics);
      return [["a", "b"], ["b", "a"]].every(([s, t]) => samples(m, "prober_icmp_duration_seconds", { source_region: s!, target_region: t!, phase: "rtt" }).length === 1) ? m : undefined;
    });
    expect(Number(samples(m, "prober_server_receive_points_total", { prober_type: "icmp" })[0]!.value)).toBeGreaterThan(0);
    for (const s of samples(m, "prober_server_reject_points_total")) expect({ ...s.labels, value: s.value }).toEqual({ ...s.labels, value: "0" });
    for (const [s, t] of [["a", "b"], ["b", "a"]]) expect(samples(m, "prober_icmp_packet_loss_rate", { source_region: s!, target_region: t! })[0]!.value).toBe("0");
  }, 40_000);
});
