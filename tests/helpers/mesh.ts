/**
 * A small live mesh of the compiled binaries on loopback for tests of what the HTTP side shows:
 * a local HTTP target (region "web", probed as http and as a tcp connect), the server with 1 s windows, and one agent per region at
 * the given IPs. Needs root (the agents' raw ICMP sockets). Stop with killAll() and `stop()`.
 */
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { AGENT_BIN, SERVER_BIN, freePort, start, waitFor } from "./procs.ts";

/** A running mesh: the HTTP side's base URL and how to stop the HTTP target. */
export interface WebMesh {
  base: string;
  stop(): void;
}

/** Starts it and waits until the server is ready. @param regions [region, agent IP] pairs */
export async function startWebMesh(regions: [string, string][], serverFlags: string[] = []): Promise<WebMesh> {
  const target = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response("ok") });
  const dir = mkdtempSync(`${tmpdir()}/pm-web-`);
  writeFileSync(`${dir}/p.yaml`, `prober_configs:\n  - prober_type: http\n    region: web\n    targets: ["http://127.0.0.1:${target.port}/"]\n  - prober_type: tcp\n    region: web\n    targets: ["127.0.0.1:${target.port}"]\n`);
  const [rpc, web] = [await freePort(), await freePort()];
  const base = `http://127.0.0.1:${web}`;
  start([SERVER_BIN, "-server.probe.file", `${dir}/p.yaml`, "-server.rpc.listen.addr", `127.0.0.1:${rpc}`, "-server.http.listen.addr", `127.0.0.1:${web}`, "-server.aggregation.interval", "1s", ...serverFlags]);
  await waitFor("server ready", 10_000, async () => (await fetch(`${base}/-/ready`)).ok);
  for (const [region, ip] of regions) {
    start([AGENT_BIN, "-region", region, "-agent.ip", ip, "-server.rpc.addr", `127.0.0.1:${rpc}`, "-agent.probe.interval", "1s", "-agent.sync.interval", "500ms"]);
  }
  return { base, stop: () => target.stop(true) };
}
