/**
 * Rolling upgrades (docs/protocol.md "Compatibility"): an agent of the previous release, built from
 * its commit, in one mesh with this release's server and agent. Both directions are measured, its
 * HTTP results are aggregated, and nothing it sends is rejected.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { $ } from "bun";
import { mkdtempSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { AGENT_BIN, IS_ROOT, ROOT, SERVER_BIN, freePort, killAll, samples, scrape, skipReason, start, waitFor } from "./helpers/procs.ts";

/** The commit of release 0.1.0, the previous release. */
const PREVIOUS_RELEASE = { commit: "fe6bb29", version: "0.1.0" };

const hasHistory = (await $`git -C ${ROOT} cat-file -e ${PREVIOUS_RELEASE.commit}^{commit}`.quiet().nothrow()).exitCode === 0;
const ok = IS_ROOT && hasHistory;
if (!ok) skipReason(`compat.test.ts needs root (ICMP) and the git history of release ${PREVIOUS_RELEASE.version} (commit ${PREVIOUS_RELEASE.commit}); root=${IS_ROOT} history=${hasHistory}`);

describe.skipIf(!ok)(`an agent of release ${PREVIOUS_RELEASE.version} with this release's server`, () => {
  let metrics = "";
  let web: ReturnType<typeof Bun.serve>;

  beforeAll(async () => {
    const dir = mkdtempSync(`${tmpdir()}/pm-compat-`);
    await $`git -C ${ROOT} archive ${PREVIOUS_RELEASE.commit} | tar -x -C ${dir}`.quiet();
    symlinkSync(`${ROOT}node_modules`, `${dir}/node_modules`);
    await $`${process.execPath} build --compile ${dir}/agent.ts --outfile ${dir}/agent-old`.quiet();
    web = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response("ok") });
    writeFileSync(`${dir}/p.yaml`, `prober_configs:\n  - prober_type: http\n    region: web\n    targets: ["http://127.0.0.1:${web.port}/"]\n`);
    const [rpc, http] = [await freePort(), await freePort()];
    metrics = `http://127.0.0.1:${http}/metrics`;
    start([SERVER_BIN, "-server.probe.file", `${dir}/p.yaml`, "-server.rpc.listen.addr", `127.0.0.1:${rpc}`, "-server.http.listen.addr", `127.0.0.1:${http}`, "-server.aggregation.interval", "1s"]);
    await waitFor("server ready", 10_000, async () => (await fetch(`http://127.0.0.1:${http}/-/ready`)).ok);
    const common = ["-server.rpc.addr", `127.0.0.1:${rpc}`, "-agent.probe.interval", "1s", "-agent.sync.interval", "500ms"];
    start([`${dir}/agent-old`, "-region", "old", "-agent.ip", "127.0.70.1", ...common]);
    start([AGENT_BIN, "-region", "new", "-agent.ip", "127.0.70.2", ...common]);
  }, 120_000);
  afterAll(async () => {
    await killAll();
    web?.stop(true);
  });

  test("both directions measured, the old agent's HTTP phases published, nothing rejected", async () => {
    const m = await waitFor("old <-> new measured and old's HTTP phases", 30_000, async () => {
      const m = await scrape(metrics);
      const pairs = [["old", "new"], ["new", "old"]].every(([s, t]) => samples(m, "prober_icmp_duration_seconds", { source_region: s!, target_region: t!, phase: "rtt" }).length === 1);
      return pairs && samples(m, "prober_http_duration_seconds", { source_region: "old", phase: "processing" }).length === 1 ? m : undefined;
    });
    for (const [s, t] of [["old", "new"], ["new", "old"]]) expect(samples(m, "prober_icmp_packet_loss_rate", { source_region: s!, target_region: t! })[0]!.value).toBe("0");
    expect(samples(m, "prober_agent_is_alive", { region: "old", version: PREVIOUS_RELEASE.version })[0]!.value).toBe("1");
    for (const s of samples(m, "prober_server_reject_points_total")) expect({ ...s.labels, value: s.value }).toEqual({ ...s.labels, value: "0" });
    expect(Number(samples(m, "prober_icmp_packets_sent_total", { source_region: "old", target_region: "new" })[0]!.value)).toBeGreaterThan(0);
  }, 40_000);
});
