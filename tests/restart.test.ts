/**
 * A server restart loses nothing (docs/protocol.md "Restarts"): a dynamic mesh of three agents,
 * `kill -9` of the server, a restart on the same ports. The agents' queued and fresh results are
 * all accepted by the new server: no `not_assigned` or `invalid` rejection, every batch delivered,
 * and the outage backlog counted in the cumulative series only (late points).
 */
import { afterAll, expect, test } from "bun:test";
import { AGENT_BIN, IS_ROOT, SERVER_BIN, freePort, killAll, samples, scrape, skipReason, start, waitFor } from "./helpers/procs.ts";

afterAll(killAll);
if (!IS_ROOT) skipReason("restart.test.ts needs root for raw ICMP sockets");

test.skipIf(!IS_ROOT)("kill -9 and restart of the server: zero rejections, the backlog delivered", async () => {
  const [rpc, web] = [await freePort(), await freePort()];
  const serverCmd = [SERVER_BIN, "-server.rpc.listen.addr", `127.0.0.1:${rpc}`, "-server.http.listen.addr", `127.0.0.1:${web}`, "-server.aggregation.interval", "500ms"];
  const metrics = `http://127.0.0.1:${web}/metrics`;
  const value = (m: Awaited<ReturnType<typeof scrape>>, name: string, labels: Record<string, string> = {}) => samples(m, name, labels).reduce((n, s) => n + Number(s.value), 0);
  let server = start(serverCmd);
  await waitFor("server ready", 10_000, async () => (await fetch(`http://127.0.0.1:${web}/-/ready`)).ok);
  const agents = [["ra", "127.0.60.1"], ["rb", "127.0.60.2"], ["rc", "127.0.60.3"]].map(([region, ip]) =>
    start([AGENT_BIN, "-region", region!, "-agent.ip", ip!, "-server.rpc.addr", `127.0.0.1:${rpc}`, "-agent.probe.interval", "500ms", "-agent.sync.interval", "500ms"]),
  );
  await waitFor("the full mesh measured", 15_000, async () => samples(await scrape(metrics), "prober_icmp_packet_loss_rate").length === 6);

  const before = agents.map((a) => a.output().length);
  await server.kill("SIGKILL");
  const downMs = 3000;
  await Bun.sleep(downMs);
  server = start(serverCmd);
  await waitFor("server ready again", 10_000, async () => (await fetch(`http://127.0.0.1:${web}/-/ready`)).ok);
  // A default round (64 echoes 15 ms apart) takes about 1 s, longer than the 500 ms interval, and
  // rounds of a target never overlap: each agent queues about one batch per second of the outage
  // and delivers them all (a batch leaves the
  // agent's outbox only when the server accepted the push).
  const delivered = /"batches":(\d+),"msg":"push recovered; queued batches delivered"/;
  await waitFor("every agent's backlog delivered", 15_000, () => agents.every((a) => delivered.test(a.output().slice(before[agents.indexOf(a)]))));
  const m = await waitFor("the mesh measured again", 15_000, async () => {
    const m = await scrape(metrics);
    return samples(m, "prober_icmp_packet_loss_rate").length === 6 ? m : undefined;
  });
  expect(value(m, "prober_server_reject_points_total")).toBe(0);
  // 3 agents x 2 targets, about one round a second: 18 results probed during the outage.
  expect(value(m, "prober_server_receive_points_total", { prober_type: "icmp" })).toBeGreaterThanOrEqual(3 * 2 * (downMs / 1000 - 1));
  expect(value(m, "prober_server_late_points_total", { prober_type: "icmp" })).toBeGreaterThan(0);
  agents.forEach((a, i) => {
    const after = a.output().slice(before[i]);
    expect(Number(delivered.exec(after)![1])).toBeGreaterThanOrEqual(downMs / 1000 - 1);
    expect(after).not.toContain("server rejected results");
    // The restarted server's first, partial pools never made an agent stop probing a target.
    expect(after).not.toMatch(/"stopped":[1-9]/);
  });
  // The mesh's windows after the restart are clean: the backlog did not land in them.
  for (const s of samples(m, "prober_icmp_packet_loss_rate")) expect(s.value).toBe("0");
}, 60_000);
