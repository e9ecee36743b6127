/**
 * Static discovery with a probe file, in the project's own network namespaces: the agent probes
 * exactly the file's targets; a target that answers shows loss 0, one that never answers (an
 * address of the veth subnet that no host owns) shows loss 1 and a failure count.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { AGENT_BIN, SERVER_BIN, killAll, parseExposition, run, samples, skipReason, start, waitFor } from "./helpers/procs.ts";
import { createNsPair, netnsAvailable, type NsPair } from "./helpers/netns.ts";

const available = await netnsAvailable();
if (!available) skipReason("static.test.ts needs root and iproute2 (network namespaces)");

describe.skipIf(!available)("static discovery in a namespace pair", () => {
  let ns: NsPair;
  const metrics = async () => parseExposition((await run([...ns.inNear, "curl", "-sf", "http://127.0.0.1:16001/metrics"])).stdout);

  beforeAll(async () => {
    ns = await createNsPair("static");
    const dir = mkdtempSync(`${tmpdir()}/pm-static-`);
    writeFileSync(
      `${dir}/p.yaml`,
      `prober_configs:
  - prober_type: icmp
    region: lit
    icmp: {packet_count: 10, interval: 10ms, timeout: 1s}
    targets: [${ns.farIp}]
  - prober_type: icmp
    region: dark
    icmp: {packet_count: 10, interval: 10ms, timeout: 1s}
    targets: [${ns.unusedIp}]
`,
    );
    start([SERVER_BIN, "-server.icmp.discovery", "static", "-server.probe.file", `${dir}/p.yaml`, "-server.rpc.listen.addr", "127.0.0.1:16000", "-server.http.listen.addr", "127.0.0.1:16001", "-server.aggregation.interval", "1s"], ns.inNear);
    await waitFor("server ready", 10_000, async () => (await run([...ns.inNear, "curl", "-sf", "http://127.0.0.1:16001/-/ready"])).code === 0);
    for (const [region, ip] of [["src", "127.0.0.5"], ["other", "127.0.0.6"]]) {
      start([AGENT_BIN, "-region", region!, "-agent.ip", ip!, "-server.rpc.addr", "127.0.0.1:16000", "-agent.probe.interval", "1s", "-agent.sync.interval", "500ms"], ns.inNear);
    }
  });
  afterAll(async () => {
    await killAll();
    await ns?.remove();
  });

  test("exactly the file's targets are handed out and probed", async () => {
    type Targets = { pools: Record<string, { icmp: { address: string }[] }> };
    const t = await waitFor("both agents registered", 5000, async () => {
      const t = JSON.parse((await run([...ns.inNear, "curl", "-sf", "http://127.0.0.1:16001/-/targets"])).stdout) as Targets;
      return Object.keys(t.pools).length === 2 ? t : undefined;
    });
    // Static: the other agent's IP (127.0.0.6) is not a target; only the file's addresses are.
    expect(t.pools.src!.icmp.map((x) => x.address).sort()).toEqual([ns.farIp, ns.unusedIp].sort());
    const m = await waitFor("both target regions measured", 15_000, async () => {
      const m = await metrics();
      return samples(m, "prober_icmp_packet_loss_rate", { source_region: "src" }).length === 2 ? m : undefined;
    });
    const targetRegions = new Set(samples(m, "prober_icmp_packet_loss_rate").map((s) => s.labels.target_region));
    expect([...targetRegions].sort()).toEqual(["dark", "lit"]);
  }, 30_000);

  test("an answering target has loss 0; one that never answers has loss 1 and failures", async () => {
    const m = await waitFor("dark measured", 15_000, async () => {
      const m = await metrics();
      return samples(m, "prober_icmp_failed", { source_region: "src", target_region: "dark" }).length ? m : undefined;
    });
    expect(samples(m, "prober_icmp_packet_loss_rate", { source_region: "src", target_region: "lit" })[0]!.value).toBe("0");
    expect(samples(m, "prober_icmp_failed", { source_region: "src", target_region: "lit" })[0]!.value).toBe("0");
    expect(samples(m, "prober_icmp_packet_loss_rate", { source_region: "src", target_region: "dark" })[0]!.value).toBe("1");
    expect(Number(samples(m, "prober_icmp_failed", { source_region: "src", target_region: "dark" })[0]!.value)).toBeGreaterThan(0);
    expect(samples(m, "prober_icmp_duration_seconds", { target_region: "dark", phase: "rtt" })).toHaveLength(0);
  }, 30_000);
});
