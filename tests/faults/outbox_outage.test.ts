/**
 * A server outage of a minute while agents probe 1,000 targets (docs/protocol.md "Agents when the
 * server is away"): the agents queue what they measure, bounded in bytes (-agent.outbox.max.bytes),
 * and deliver it once the server is back.
 *
 * Two agents in two namespaces, each probing 1,000 loopback addresses of its own namespace
 * (127.1.0.0-127.1.3.231 answer pings there; static discovery, one echo per round, a 2 s interval):
 * - "rbig" with the default outbox (64 MiB): every result probed during the outage is delivered
 *   after the restart, and counted once;
 * - "rtiny" with -agent.outbox.max.bytes 200000 (about one push of 500 results): the oldest
 *   batches are dropped, the agent logs it, and the restarted server counts them in
 *   prober_agent_dropped_points_total{region="rtiny"}.
 *
 * Ground truth: an nftables counter of the echo requests each agent's namespace sent (one echo
 * per round, so echoes = rounds). Before the kill, the agents' RPC port is refused for 2 s so no
 * push is in flight, and the old server's counts are read; then SIGKILL, 60 s, a restart on the
 * same port. At the end the agents are stopped with SIGTERM (they push what they queued; a round
 * cut short is not reported). Per agent: old server's prober_icmp_packets_sent_total + the new
 * server's (+ dropped points for rtiny) never exceeds the echoes sent, and falls short by at most
 * one round per target (the rounds in flight at the end). The new server refuses no duplicate.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { loopbackTargets } from "../../bench/targets.ts";
import { bedAgent, bedServer, createMeshBed, faultBedMissing, logLines, total, type BedServer, type MeshBed } from "../helpers/meshbed.ts";
import { dropTcpPort, echoRequestCounter, restore, type EchoCounter } from "../helpers/nft.ts";
import { killAll, skipReason, waitFor, type Proc } from "../helpers/procs.ts";

const missing = await faultBedMissing();
if (missing) skipReason(`tests/faults/outbox_outage.test.ts ${missing}`);

const TARGETS = 1000;
const OUTAGE_MS = 60_000;
const TINY_OUTBOX = 200_000;

describe.skipIf(!!missing)("a minute-long server outage at 1,000 targets", () => {
  let bed: MeshBed;
  let server: BedServer;
  const agents: Record<"big" | "tiny", Proc> = {} as never;
  const echoes: Record<"big" | "tiny", EchoCounter> = {} as never;
  const region = { big: "rbig", tiny: "rtiny" } as const;

  beforeAll(async () => {
    bed = await createMeshBed("outbox", ["big", "tiny"]);
    const probes = `${mkdtempSync(`${tmpdir()}/pmf-outbox-`)}/probes.yaml`;
    writeFileSync(probes, `prober_configs:\n  - prober_type: icmp\n    region: dst\n    icmp: {packet_count: 1, interval: 10ms, timeout: 500ms}\n    targets: [${loopbackTargets(TARGETS).join(", ")}]\n`);
    server = bedServer(bed, 6000, 6001, ["-server.probe.file", probes, "-server.icmp.discovery", "static"]);
    await server.start();
    for (const h of ["big", "tiny"] as const) {
      echoes[h] = await echoRequestCounter(bed.host(h).ns, { loopback: true });
      agents[h] = bedAgent(bed, bed.host(h), region[h], server.rpcAddr, ["-agent.probe.interval", "2s", ...(h === "tiny" ? ["-agent.outbox.max.bytes", String(TINY_OUTBOX)] : [])]);
    }
    await waitFor("both agents' results counted", 30_000, async () => {
      const m = await server.metrics();
      return (["big", "tiny"] as const).every((h) => total(m, "prober_icmp_packets_sent_total", { source_region: region[h] }) >= TARGETS);
    });
  }, 60_000);
  afterAll(async () => {
    await killAll();
    await bed?.remove();
  });

  test("killed for 60 s and restarted: everything queued delivered once; a tiny outbox drops, says so, and the server counts it", async () => {
    // No push in flight when the server dies: refuse the port for 2 s, then read what it counted.
    for (const h of ["big", "tiny"] as const) await dropTcpPort(bed.host(h).ns, server.rpcPort, "refuse", bed.core.ip);
    await Bun.sleep(2_000);
    const old = await server.metrics();
    const oldSent = { big: total(old, "prober_icmp_packets_sent_total", { source_region: "rbig" }), tiny: total(old, "prober_icmp_packets_sent_total", { source_region: "rtiny" }) };
    const oldDropped = total(old, "prober_agent_dropped_points_total", { region: "rtiny" });
    await server.proc!.kill("SIGKILL");
    for (const h of ["big", "tiny"] as const) await restore(bed.host(h).ns);
    const marks = { big: agents.big.output().length, tiny: agents.tiny.output().length };
    const before = { big: await echoes.big.read(), tiny: await echoes.tiny.read() };
    await Bun.sleep(OUTAGE_MS);
    const during = { big: (await echoes.big.read()) - before.big, tiny: (await echoes.tiny.read()) - before.tiny };
    console.log(`rounds probed during the outage: big ${during.big}, tiny ${during.tiny}`);
    expect(during.big).toBeGreaterThan(TARGETS * 20);

    await server.start();
    await waitFor("the big agent's backlog delivered", 60_000, () => logLines(agents.big, marks.big).some((l) => l.msg === "push recovered; queued batches delivered"));
    await waitFor("the tiny agent's drops counted", 30_000, async () => total(await server.metrics(), "prober_agent_dropped_points_total", { region: "rtiny" }) > 0);
    await Bun.sleep(2_000);

    for (const h of ["big", "tiny"] as const) agents[h].proc.kill("SIGTERM");
    for (const h of ["big", "tiny"] as const) expect(await agents[h].exited).toBe(0);
    const m = await server.metrics();
    const sent = { big: await echoes.big.read(), tiny: await echoes.tiny.read() };
    const newSent = { big: total(m, "prober_icmp_packets_sent_total", { source_region: "rbig" }), tiny: total(m, "prober_icmp_packets_sent_total", { source_region: "rtiny" }) };
    const dropped = total(m, "prober_agent_dropped_points_total", { region: "rtiny" });
    console.log(JSON.stringify({ echoes: sent, oldServer: oldSent, newServer: newSent, oldDropped, dropped, late: total(m, "prober_server_late_points_total"), received: total(m, "prober_server_receive_points_total") }));

    // Counted once: old + new never exceeds what was sent; short by the rounds in flight at the end at most.
    const big = oldSent.big + newSent.big;
    expect(big).toBeLessThanOrEqual(sent.big);
    expect(sent.big - big).toBeLessThanOrEqual(TARGETS);
    expect(total(m, "prober_agent_dropped_points_total", { region: "rbig" })).toBe(0);
    expect(total(m, "prober_server_reject_points_total", { reason: "duplicate" })).toBe(0);
    expect(total(m, "prober_server_reject_points_total")).toBe(0);
    // The backlog is old: it went to the cumulative series as late points.
    expect(total(m, "prober_server_late_points_total", { prober_type: "icmp" })).toBeGreaterThan(TARGETS * 10);

    // The tiny outbox dropped most of the outage, said so, and every result is either counted or dropped, once.
    expect(dropped).toBeGreaterThan(TARGETS * 10);
    const tiny = oldSent.tiny + newSent.tiny + dropped + oldDropped;
    expect(tiny).toBeLessThanOrEqual(sent.tiny);
    expect(sent.tiny - tiny).toBeLessThanOrEqual(TARGETS);
    expect(logLines(agents.tiny, marks.tiny).some((l) => /outbox full/.test(String(l.msg)))).toBe(true);
    expect(logLines(agents.big, marks.big).some((l) => /outbox full/.test(String(l.msg)))).toBe(false);
  }, 240_000);
});
