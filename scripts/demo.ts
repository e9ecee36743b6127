/**
 * `npm run mesh`: a real mesh on this machine. Builds dist/server and dist/agent, serves two HTTP
 * targets on loopback, starts the server and three agents in three regions on 127.0.0.11-13
 * (real ICMP between them), and prints where to look. Ctrl-C stops everything.
 * Optional: `npm run mesh -- 60s` stops by itself after that long.
 */
import { spawn } from "bun";
import { mkdirSync, writeFileSync } from "node:fs";
import { parseDurationMs } from "../lib/cli/duration.ts";

const root = new URL("..", import.meta.url).pathname;
const stopAfter = process.argv[2] ? parseDurationMs(process.argv[2]) : 0;
await spawn([process.execPath, `${root}scripts/build.ts`], { stdout: "inherit", stderr: "inherit" }).exited;

// Two HTTP targets on loopback: a fast page and one that thinks for 50 ms.
const web = Bun.serve({
  hostname: "127.0.0.1",
  port: 18080,
  fetch: async (req) => {
    if (new URL(req.url).pathname === "/slow") await Bun.sleep(50);
    return new Response("<html>ProberMesh demo target</html>", { headers: { "Content-Type": "text/html" } });
  },
});
mkdirSync(`${root}.tmp`, { recursive: true });
const file = `${root}.tmp/demo.yaml`;
writeFileSync(
  file,
  `prober_configs:
  - prober_type: http
    region: demo-web
    targets: [http://127.0.0.1:18080/, http://127.0.0.1:18080/slow]
  - prober_type: tcp
    region: demo-web
    targets: ["127.0.0.1:18080"]
`,
);

const procs = [spawn([`${root}dist/server`, "-server.probe.file", file, "-server.aggregation.interval", "2s"], { stdout: "inherit", stderr: "inherit" })];
await Bun.sleep(500);
// Three agents share this host, so each gets its own responder ports and flow port ranges (on
// separate machines the defaults serve: 6010/udp, 6011/tcp, 40100-40115 and 40200-40215).
for (const [i, [region, ip]] of [["demo-east", "127.0.0.11"], ["demo-west", "127.0.0.12"], ["demo-north", "127.0.0.13"]].entries()) {
  const flows = (base: number) => `${base + i * 20}-${base + i * 20 + 15}`;
  procs.push(spawn([
    `${root}dist/agent`, "-region", region!, "-agent.ip", ip!, "-agent.probe.interval", "2s", "-agent.sync.interval", "2s",
    "-agent.udp.listen.port", String(6010 + i * 10), "-agent.tcp.listen.port", String(6011 + i * 10),
    "-agent.udp.flow.ports", flows(40100), "-agent.tcp.flow.ports", flows(40200),
  ], { stdout: "inherit", stderr: "inherit" }));
}
console.log(`
ProberMesh demo: server + 3 agents (demo-east 127.0.0.11, demo-west 127.0.0.12, demo-north 127.0.0.13)
  web view:  http://localhost:6001/
  metrics:   http://localhost:6001/metrics     (first aggregates after ~10 s)
  targets:   http://localhost:6001/-/targets
  try:       curl -s localhost:6001/metrics | grep -E '^prober_icmp_(packet_loss_rate|duration_seconds)'
             curl -s localhost:6001/metrics | grep -E '^prober_(udp_packet_loss_rate|udp_flows_lossy|tcp_connect_loss_rate)'
Ctrl-C stops everything.
`);
// Agents first (they push what they have and say goodbye to the server), then the server.
let stopping = false;
const stop = async () => {
  if (stopping) process.exit(1);
  stopping = true;
  const [server, ...agents] = procs;
  for (const p of agents) p.kill("SIGTERM");
  await Promise.race([Promise.all(agents.map((p) => p.exited)), Bun.sleep(10_000)]);
  server!.kill("SIGTERM");
  await server!.exited;
  web.stop(true);
  process.exit(0);
};
process.on("SIGINT", () => void stop());
process.on("SIGTERM", () => void stop());
if (stopAfter) setTimeout(stop, stopAfter);
