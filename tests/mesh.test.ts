/**
 * End to end with the compiled binaries: one server and three agents in three regions on
 * 127.0.0.x (dynamic discovery), real ICMP between them, then one agent killed (its host still
 * answers) and one stopped with SIGTERM (a goodbye).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { VERSION } from "../lib/version.ts";
import { AGENT_BIN, IS_ROOT, SERVER_BIN, freePort, killAll, samples, scrape, skipReason, start, waitFor, type Proc } from "./helpers/procs.ts";
import { PROBER_TYPES } from "../lib/probes/kind.ts";

const INTERVAL = "1s";
const RATIO = 3;
const REGIONS = ["mesh-a", "mesh-b", "mesh-c"];
const IPS = ["127.0.10.1", "127.0.10.2", "127.0.10.3"];

describe.skipIf(!IS_ROOT)("mesh of three agents (compiled binaries)", () => {
  let rpc = 0, web = 0;
  let metricsUrl = "";
  const agents: Proc[] = [];

  beforeAll(async () => {
    rpc = await freePort();
    web = await freePort();
    metricsUrl = `http://127.0.0.1:${web}/metrics`;
    start([SERVER_BIN, "-server.rpc.listen.addr", `127.0.0.1:${rpc}`, "-server.http.listen.addr", `127.0.0.1:${web}`, "-server.aggregation.interval", INTERVAL, "-server.series.cache.ratio", String(RATIO)]);
    await waitFor("server ready", 10_000, async () => (await fetch(`http://127.0.0.1:${web}/-/ready`)).ok);
    REGIONS.forEach((region, i) =>
      agents.push(start([AGENT_BIN, "-region", region, "-agent.ip", IPS[i]!, "-server.rpc.addr", `127.0.0.1:${rpc}`, "-agent.probe.interval", INTERVAL, "-agent.sync.interval", "500ms"])),
    );
  });
  afterAll(killAll);

  test("every region pair except self-pairs has loss 0, 0 < RTT < 10 ms, histogram count = packets received", async () => {
    const pairs = REGIONS.flatMap((s) => REGIONS.filter((t) => t !== s).map((t) => ({ source_region: s, target_region: t })));
    const m = await waitFor("all six region pairs", 15_000, async () => {
      const m = await scrape(metricsUrl);
      return pairs.every((p) => samples(m, "prober_icmp_packet_loss_rate", p).length === 1) ? m : undefined;
    });
    for (const p of pairs) {
      expect(Number(samples(m, "prober_icmp_packet_loss_rate", p)[0]!.value)).toBe(0);
      const rtt = Number(samples(m, "prober_icmp_duration_seconds", { ...p, phase: "rtt" })[0]!.value);
      expect(rtt).toBeGreaterThan(0);
      expect(rtt).toBeLessThan(0.1); // loopback: sanity only; accuracy is bench/icmp.ts's
      const min = Number(samples(m, "prober_icmp_duration_seconds", { ...p, phase: "min" })[0]!.value);
      const max = Number(samples(m, "prober_icmp_duration_seconds", { ...p, phase: "max" })[0]!.value);
      expect(min).toBeLessThanOrEqual(rtt);
      expect(max).toBeGreaterThanOrEqual(rtt);
      expect(Number(samples(m, "prober_icmp_failed", p)[0]!.value)).toBe(0);
      const count = Number(samples(m, "prober_icmp_duration_seconds_total_count", p)[0]!.value);
      // One target per pair, 64 packets a round, all answered: the count is a whole number of rounds.
      expect(count % 64).toBe(0);
      expect(count).toBeGreaterThanOrEqual(64);
      const inf = samples(m, "prober_icmp_duration_seconds_total_bucket", { ...p, le: "+Inf" })[0]!;
      expect(Number(inf.value)).toBe(count);
    }
    for (const s of REGIONS) expect(samples(m, "prober_icmp_packet_loss_rate", { source_region: s, target_region: s })).toHaveLength(0);
    REGIONS.forEach((region, i) => {
      const alive = samples(m, "prober_agent_is_alive", { region, ip: IPS[i]!, version: VERSION });
      expect(alive).toHaveLength(1);
      expect(alive[0]!.value).toBe("1");
    });
  }, 30_000);

  test("a killed agent on a live host goes to is_alive 0 and stays a target: the loss to it stays 0 (its kernel answers)", async () => {
    const deadAfterMs = RATIO * 1000;
    await agents[2]!.kill();
    await waitFor("prober_agent_is_alive 0", deadAfterMs + 5000, async () => samples(await scrape(metricsUrl), "prober_agent_is_alive", { region: "mesh-c" })[0]?.value === "0");
    const targets = (await (await fetch(`http://127.0.0.1:${web}/-/targets`)).json()) as { pools: Record<string, { icmp?: { address: string }[] }> };
    for (const region of ["mesh-a", "mesh-b"]) expect((targets.pools[region]?.icmp ?? []).map((t) => t.address)).toContain(IPS[2]);
    // Windows after its death: what it measured goes (no agent of mesh-c reports, and nothing is
    // inferred while the others reach it), what the others measure of it stays, at loss 0.
    const m = await waitFor("mesh-c's own series expired", deadAfterMs + 8000, async () => {
      const m = await scrape(metricsUrl);
      return samples(m, "prober_icmp_packet_loss_rate", { source_region: "mesh-c" }).length === 0 ? m : undefined;
    });
    for (const source_region of ["mesh-a", "mesh-b"]) expect(samples(m, "prober_icmp_packet_loss_rate", { source_region, target_region: "mesh-c" })[0]?.value).toBe("0");
    expect(samples(m, "prober_icmp_pair_inferred")).toHaveLength(0);
  }, 30_000);

  test("an agent stopped with SIGTERM says goodbye: exit 0, out of every pool at once, its series go, no loss reported", async () => {
    const a = agents[1]!;
    a.proc.kill("SIGTERM");
    expect(await a.exited).toBe(0);
    expect(a.output()).toContain("deregistered");
    const targets = (await (await fetch(`http://127.0.0.1:${web}/-/targets`)).json()) as { pools: Record<string, { icmp?: { address: string }[] }> };
    for (const pool of Object.values(targets.pools)) expect((pool.icmp ?? []).map((t) => t.address)).not.toContain(IPS[1]);
    // Until the pair's series expire, no window shows loss towards it: rounds of mesh-a that went
    // on before it synced its pool are refused as not assigned, never filed as loss.
    const seen: string[] = [];
    await waitFor("mesh-b series removed", RATIO * 1000 + 8000, async () => {
      const m = await scrape(metricsUrl);
      seen.push(...samples(m, "prober_icmp_packet_loss_rate", { target_region: "mesh-b" }).map((x) => x.value));
      return samples(m, "prober_agent_is_alive", { region: "mesh-b" }).length === 0
        && ["prober_icmp_packet_loss_rate", "prober_icmp_duration_seconds"].every((n) => samples(m, n, { target_region: "mesh-b" }).length === 0 && samples(m, n, { source_region: "mesh-b" }).length === 0);
    });
    expect(seen.filter((v) => v !== "0")).toEqual([]);
    // Rounds that were in flight to it are dropped as target_left, not rejected as not_assigned.
    const m = await scrape(metricsUrl);
    expect(samples(m, "prober_server_reject_points_total", { reason: "not_assigned" }).map((x) => x.value)).toEqual(PROBER_TYPES.map(() => "0")); // one series per kind
  }, 30_000);
});

if (!IS_ROOT) skipReason("mesh.test.ts needs root: ping sockets are disabled here (net.ipv4.ping_group_range) and raw ICMP needs CAP_NET_RAW");
