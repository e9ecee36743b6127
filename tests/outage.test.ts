/**
 * Server down: the agent keeps probing its last pool, keeps the unsent batches, and sends them
 * when the server is back (docs/protocol.md "Agents when the server is away"). Compiled binaries, static targets.
 *
 * What tells "queued and delivered" from "dropped" is the server's own filing, not a race against
 * a clock: a fresh server counts a result whose aggregation window closed before it started as
 * late (prober_server_late_points_total, lib/aggregation/window.ts). Only a result probed during
 * the outage and kept by the agent can be late; an agent that dropped its failed pushes delivers
 * only fresh results, however long the test waits.
 */
import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { AGENT_BIN, IS_ROOT, SERVER_BIN, freePort, killAll, samples, scrape, skipReason, start, waitFor } from "./helpers/procs.ts";

afterAll(killAll);
if (!IS_ROOT) skipReason("outage.test.ts needs root for raw ICMP sockets");

test.skipIf(!IS_ROOT)("results probed while the server was down arrive after it restarts", async () => {
  const dir = mkdtempSync(`${tmpdir()}/pm-outage-`);
  writeFileSync(`${dir}/p.yaml`, "prober_configs:\n  - prober_type: icmp\n    region: lo\n    icmp: {packet_count: 4, interval: 5ms, timeout: 1s}\n    targets: [127.0.50.1]\n");
  const [rpc, web] = [await freePort(), await freePort()];
  const intervalMs = 500; // -server.aggregation.interval
  const probeMs = 300; // -agent.probe.interval
  const serverCmd = [SERVER_BIN, "-server.icmp.discovery", "static", "-server.probe.file", `${dir}/p.yaml`, "-server.rpc.listen.addr", `127.0.0.1:${rpc}`, "-server.http.listen.addr", `127.0.0.1:${web}`, "-server.aggregation.interval", `${intervalMs}ms`];
  const metrics = `http://127.0.0.1:${web}/metrics`;
  const icmp = (m: Awaited<ReturnType<typeof scrape>>, name: string) => Number(samples(m, name, { prober_type: "icmp" })[0]?.value ?? 0);
  let server = start(serverCmd);
  await waitFor("server ready", 30_000, async () => (await fetch(`http://127.0.0.1:${web}/-/ready`)).ok);
  const agent = start([AGENT_BIN, "-region", "src", "-agent.ip", "127.0.50.2", "-server.rpc.addr", `127.0.0.1:${rpc}`, "-agent.probe.interval", `${probeMs}ms`, "-agent.sync.interval", "300ms"]);
  await waitFor("first results", 30_000, async () => icmp(await scrape(metrics), "prober_server_receive_points_total") > 0);

  await server.kill();
  const downAt = Date.now();
  const offset = agent.output().length;
  await waitFor("the agent keeping a failed push", 30_000, () => agent.output().slice(offset).includes("push failed; results kept"));
  await Bun.sleep(4000); // the outage (its length is the test's choice, not a wait for something)
  const restartAt = Date.now();
  server = start(serverCmd);
  await waitFor("server ready again", 30_000, async () => (await fetch(`http://127.0.0.1:${web}/-/ready`)).ok);
  await waitFor("the agent's backlog delivered", 60_000, () => agent.output().slice(offset).includes("push recovered; queued batches delivered"));

  // A result is late on the fresh server when its window ended lateness (I + min(I, 5 s)) before
  // the server started: rounds that ended more than I + lateness before restartAt are surely
  // late. The agent probed about one round per probeMs in that span (measured, not assumed: the
  // span runs from the kill to the restart); half of them is the bar, for a loaded machine.
  const latenessMs = intervalMs + Math.min(intervalMs, 5000);
  const surelyLateMs = restartAt - downAt - (intervalMs + latenessMs);
  const queuedMin = Math.max(1, Math.floor(surelyLateMs / probeMs / 2));
  const m = await waitFor(`at least ${queuedMin} late (queued) results counted`, 60_000, async () => {
    const m = await scrape(metrics);
    return icmp(m, "prober_server_late_points_total") >= queuedMin ? m : undefined;
  });
  const [received, late] = [icmp(m, "prober_server_receive_points_total"), icmp(m, "prober_server_late_points_total")];
  console.log(`outage ${restartAt - downAt} ms: ${late} late results (bar ${queuedMin}), ${received} received by the fresh server in ${Date.now() - restartAt} ms`);
  expect(late).toBeGreaterThanOrEqual(queuedMin);
  expect(received).toBeGreaterThanOrEqual(late);
  // Nothing was dropped at the source (the outbox is far from full) and nothing rejected.
  for (const s of samples(m, "prober_agent_dropped_points_total")) expect(s.value).toBe("0");
  for (const s of samples(m, "prober_server_reject_points_total")) expect(s.value).toBe("0");
}, 180_000);
