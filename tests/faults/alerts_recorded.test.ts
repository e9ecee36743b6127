/**
 * The shipped alerts (deploy/prometheus/probermesh.rules.yml) on what the servers really exposed
 * through a region cut and an agent crash, checked by promtool.
 *
 * Three regions (one agent each) in namespaces, two servers sharing a Redis registry in core (r1
 * and r3 report to A, r2 to B). Every second both servers' /metrics are scraped; then:
 *   baseline, region r3 cut off (nftables) for 45 s, restored, and r2's agent killed with SIGKILL
 *   on its live host.
 * The recorded scrapes become the input_series of a promtool test file (in a temporary folder,
 * or $PMF_LOGS to keep it): every
 * series the rules read, as exposed, with the labels Prometheus would add (instance, job), one
 * promtool step per scrape, `_` where a scrape had no such series. Nothing is invented.
 *
 * Time is stretched: each 1 s scrape is a 15 s step (`interval: 15s`), so `for: 3m` and
 * `rate(...[5m])` see as many points as they would in production. Ratios of counters (the loss
 * rules) are unchanged by stretching time; the servers run 1 s windows with ratio 5 (agents dead
 * after 5 s = 75 s stretched, the production default of 15 s x 5), so the relative timing of
 * "agent dead", windows and rule ranges is production's. (An ICMP round, ~0.3 s, stretches to
 * ~5 s: as long as the default 64-echo round.)
 *
 * Expectations (the contract, docs/alerts.md):
 * - ProberMeshRegionIsolated: silent before the cut; firing for r3 at the end of the cut (every
 *   pair to r3 loses >= 99 %); silent again well after the restore;
 * - ProberMeshAgentDown: never for the cut region's agent (a cut is ProberMeshRegionIsolated, not
 *   an agent down); firing for r2's agent killed on a live host.
 * `promtool test rules` on the generated file must say SUCCESS.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { bedAgent, bedRedis, bedServer, createMeshBed, faultBedMissing, gauge, meshProbeFile, type BedServer, type MeshBed } from "../helpers/meshbed.ts";
import { cut, restore } from "../helpers/nft.ts";
import { ROOT, killAll, run, skipReason, waitFor, type Proc } from "../helpers/procs.ts";
import { expectedAlert, metricsRead, readRules, recordScrapes } from "../helpers/recorded.ts";

const missing = await faultBedMissing(["redis-server", "promtool"]);
if (missing) skipReason(`tests/faults/alerts_recorded.test.ts ${missing}`);

const RULES = `${ROOT}deploy/prometheus/probermesh.rules.yml`;
/** Where the generated promtool file goes: PMF_LOGS if set (to keep it), else a temporary folder. */
const OUT = process.env.PMF_LOGS ?? mkdtempSync(`${tmpdir()}/pmf-alerts-`);
const STEP_S = 15;
const REGIONS = { a1: "r1", b1: "r2", c1: "r3" } as const;

describe.skipIf(!!missing)("alerts from recorded series", () => {
  let bed: MeshBed;
  const servers: Record<"A" | "B", BedServer> = {} as never;
  const agents = {} as Record<keyof typeof REGIONS, Proc>;

  beforeAll(async () => {
    bed = await createMeshBed("alerts", Object.keys(REGIONS));
    await bedRedis(bed);
    const flags = ["-server.registry.url", "redis://127.0.0.1:6379/0", "-server.series.cache.ratio", "5", "-server.probe.file", meshProbeFile(bed, REGIONS)];
    servers.A = bedServer(bed, 6000, 6001, flags);
    servers.B = bedServer(bed, 6100, 6101, flags);
    await servers.A.start();
    await servers.B.start();
    for (const [name, region] of Object.entries(REGIONS) as [keyof typeof REGIONS, string][]) {
      agents[name] = bedAgent(bed, bed.host(name), region, name === "b1" ? servers.B.rpcAddr : servers.A.rpcAddr);
    }
    const regions = Object.values(REGIONS);
    await waitFor("the full mesh at loss 0 on the servers", 40_000, async () => {
      const [ma, mb] = await Promise.all([servers.A.metrics(), servers.B.metrics()]);
      return regions.every((s) => regions.every((t) => s === t || gauge(ma, "prober_icmp_packet_loss_rate", { source_region: s, target_region: t }) === 0 || gauge(mb, "prober_icmp_packet_loss_rate", { source_region: s, target_region: t }) === 0));
    });
  }, 90_000);
  afterAll(async () => {
    await killAll();
    await bed?.remove();
  });

  test("a region cut and an agent crash, as recorded, fire ProberMeshRegionIsolated and ProberMeshAgentDown as documented", async () => {
    const rules = readRules(RULES);
    const wanted = metricsRead(rules);
    const alert = (name: string) => {
      const r = rules.find((x) => x.alert === name);
      if (!r) throw new Error(`${RULES} has no alert ${name}`);
      return r;
    };

    // Recording: one step per second, both servers scraped together.
    const recorder = recordScrapes({ A: () => servers.A.metrics(), B: () => servers.B.metrics() }, wanted);
    const stepNow = () => recorder.now();

    await Bun.sleep(16_000);
    const kCut = stepNow();
    await cut(bed.host("c1").ns);
    await Bun.sleep(45_000);
    const kRestore = stepNow();
    await restore(bed.host("c1").ns);
    await Bun.sleep(2_000);
    const kKill = stepNow();
    await agents.b1.kill("SIGKILL");
    await Bun.sleep(25_000);
    const steps = await recorder.stop();
    const kEnd = steps.length - 1;
    console.log(`recorded ${steps.length} scrapes: cut at step ${kCut}, restore at ${kRestore}, SIGKILL at ${kKill}`);

    // input_series: every series seen, its value per step ("_" where a scrape did not have it).
    const all = new Set(steps.flatMap((s) => [...s.keys()]));
    const series = [...all].sort().map((sel) => ({ series: sel, values: steps.map((s) => s.get(sel) ?? "_").map((v) => (v === "NaN" ? "NaN" : v)).join(" ") }));

    const at = (k: number) => `${k * STEP_S}s`;
    const isolated = alert("ProberMeshRegionIsolated");
    const down = alert("ProberMeshAgentDown");
    const expected = expectedAlert;
    const c1 = bed.host("c1").ip, b1 = bed.host("b1").ip;
    const alertTests = [
      { alertname: "ProberMeshRegionIsolated", eval_time: at(kCut - 1), exp_alerts: [] },
      { alertname: "ProberMeshRegionIsolated", eval_time: at(kRestore - 1), exp_alerts: [expected(isolated, { region: "r3", target_region: "r3" })] },
      { alertname: "ProberMeshRegionIsolated", eval_time: at(kEnd), exp_alerts: [] },
      // The cut region's agent is dead for most of the cut: never ProberMeshAgentDown.
      ...Array.from({ length: Math.floor((kRestore - kCut) / 3) }, (_, i) => ({ alertname: "ProberMeshAgentDown", eval_time: at(kCut + 3 * (i + 1)), exp_alerts: [] })),
      { alertname: "ProberMeshAgentDown", eval_time: at(kEnd), exp_alerts: [expected(down, { region: "r2", ip: b1 })] },
    ];
    const file = {
      rule_files: [RULES],
      evaluation_interval: `${STEP_S}s`,
      tests: [{
        name: `recorded: r3 (${c1}) cut at ${at(kCut)}, restored at ${at(kRestore)}; r2's agent (${b1}) SIGKILL at ${at(kKill)}`,
        interval: `${STEP_S}s`,
        input_series: series,
        alert_rule_test: alertTests,
      }],
    };
    mkdirSync(OUT, { recursive: true });
    const path = `${OUT}/alerts_recorded.test.yml`;
    writeFileSync(path, `# Generated by tests/faults/alerts_recorded.test.ts from real scrapes (1 s apart, presented as ${STEP_S} s steps).\n` + JSON.stringify(file, null, 1) + "\n");
    const r = await run(["promtool", "test", "rules", path]);
    const said = `${r.stdout}${r.stderr}`;
    console.log(`promtool test rules ${path}:\n${said.slice(0, 6000)}`);
    expect(said).toContain("SUCCESS");
    expect(r.code).toBe(0);
  }, 240_000);
});
