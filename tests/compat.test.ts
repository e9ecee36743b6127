/**
 * Rolling upgrades (docs/protocol.md "Compatibility"): agents of the previous releases, each built
 * from its commit, in one mesh with this release's server and agent. Both directions are measured
 * for each, their HTTP results are aggregated, and nothing they send is rejected.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { $ } from "bun";
import { mkdtempSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { AGENT_BIN, IS_ROOT, ROOT, SERVER_BIN, freePort, killAll, samples, scrape, skipReason, start, waitFor } from "./helpers/procs.ts";

/** The commits of the previous releases (0.2.0 is the previous one; 0.1.0 is kept while fleets still run it). */
const PREVIOUS_RELEASES = [
  { commit: "fe6bb29", version: "0.1.0", region: "v010", ip: "127.0.70.1" },
  { commit: "dfd9e7e", version: "0.2.0", region: "v020", ip: "127.0.70.3" },
];

const hasHistory = (await Promise.all(PREVIOUS_RELEASES.map(async (r) => (await $`git -C ${ROOT} cat-file -e ${r.commit}^{commit}`.quiet().nothrow()).exitCode === 0))).every(Boolean);
const ok = IS_ROOT && hasHistory;
if (!ok) skipReason(`compat.test.ts needs root (ICMP) and the git history of releases ${PREVIOUS_RELEASES.map((r) => `${r.version} (${r.commit})`).join(", ")}; root=${IS_ROOT} history=${hasHistory}`);

describe.skipIf(!ok)(`agents of releases ${PREVIOUS_RELEASES.map((r) => r.version).join(", ")} with this release's server`, () => {
  let metrics = "";
  let web: ReturnType<typeof Bun.serve>;

  beforeAll(async () => {
    const dir = mkdtempSync(`${tmpdir()}/pm-compat-`);
    for (const r of PREVIOUS_RELEASES) {
      const src = `${dir}/${r.version}`;
      await $`mkdir -p ${src}`.quiet();
      await $`git -C ${ROOT} archive ${r.commit} | tar -x -C ${src}`.quiet();
      symlinkSync(`${ROOT}node_modules`, `${src}/node_modules`);
      await $`${process.execPath} build --compile ${src}/agent.ts --outfile ${dir}/agent-${r.version}`.quiet();
    }
    web = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response("ok") });
    writeFileSync(`${dir}/p.yaml`, `prober_configs:\n  - prober_type: http\n    region: web\n    targets: ["http://127.0.0.1:${web.port}/"]\n`);
    const [rpc, http] = [await freePort(), await freePort()];
    metrics = `http://127.0.0.1:${http}/metrics`;
    start([SERVER_BIN, "-server.probe.file", `${dir}/p.yaml`, "-server.rpc.listen.addr", `127.0.0.1:${rpc}`, "-server.http.listen.addr", `127.0.0.1:${http}`, "-server.aggregation.interval", "1s"]);
    await waitFor("server ready", 10_000, async () => (await fetch(`http://127.0.0.1:${http}/-/ready`)).ok);
    const common = ["-server.rpc.addr", `127.0.0.1:${rpc}`, "-agent.probe.interval", "1s", "-agent.sync.interval", "500ms"];
    for (const r of PREVIOUS_RELEASES) start([`${dir}/agent-${r.version}`, "-region", r.region, "-agent.ip", r.ip, ...common]);
    start([AGENT_BIN, "-region", "new", "-agent.ip", "127.0.70.2", ...common]);
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
  }, 40_000);
});
