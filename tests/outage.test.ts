/**
 * Server down: the agent keeps probing its last pool, keeps the unsent batches, and sends them
 * when the server is back (docs/protocol.md "Agents when the server is away"). Compiled binaries, static targets.
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
  const serverCmd = [SERVER_BIN, "-server.icmp.discovery", "static", "-server.probe.file", `${dir}/p.yaml`, "-server.rpc.listen.addr", `127.0.0.1:${rpc}`, "-server.http.listen.addr", `127.0.0.1:${web}`, "-server.aggregation.interval", "500ms"];
  const metrics = `http://127.0.0.1:${web}/metrics`;
  let server = start(serverCmd);
  await waitFor("server ready", 10_000, async () => (await fetch(`http://127.0.0.1:${web}/-/ready`)).ok);
  const agent = start([AGENT_BIN, "-region", "src", "-agent.ip", "127.0.50.2", "-server.rpc.addr", `127.0.0.1:${rpc}`, "-agent.probe.interval", "300ms", "-agent.sync.interval", "300ms"]);
  await waitFor("first results", 10_000, async () => Number(samples(await scrape(metrics), "prober_server_receive_points_total", { prober_type: "icmp" })[0]?.value) > 0);

  await server.kill();
  const downMs = 3000;
  await Bun.sleep(downMs);
  server = start(serverCmd);
  await waitFor("server ready again", 10_000, async () => (await fetch(`http://127.0.0.1:${web}/-/ready`)).ok);
  // A fresh server counts from 0. Within 1 s an agent that dropped its batches could deliver at
  // most ~4 rounds (one per 300 ms); one that queued them delivers the ~10 rounds of the outage.
  const queued = downMs / 300 - 2;
  const points = await waitFor("queued batches delivered", 1000, async () => {
    const n = Number(samples(await scrape(metrics), "prober_server_receive_points_total", { prober_type: "icmp" })[0]?.value ?? 0);
    return n >= queued ? n : undefined;
  });
  expect(points).toBeGreaterThanOrEqual(queued);
  expect(agent.output()).toContain("push failed; results kept");
}, 40_000);
