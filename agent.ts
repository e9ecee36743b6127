#!/usr/bin/env bun
/**
 * ProberMesh agent: probes the targets the server hands to its region (ICMP mesh and HTTP) and
 * pushes results. Flags as in SPEC.md; logic in lib/agent/.
 */
import { isIP } from "node:net";
import { parseFlagsOrExit, type FlagSpec } from "./lib/cli/flags.ts";
import { createLogger, LOG_LEVELS } from "./lib/log.ts";
import { defaultAgentIp, startAgent } from "./lib/agent/agent.ts";
import { discoverRegion } from "./lib/agent/region.ts";
import { VERSION } from "./lib/version.ts";

const FLAGS: FlagSpec[] = [
  { name: "agent.region", aliases: ["region"], kind: "string", default: "", help: "region of this agent; empty: env PROBER_REGION, then cloud metadata" },
  { name: "agent.rpc.report.addr", aliases: ["server.rpc.addr"], kind: "string", default: "localhost:6000", help: "server RPC address, host:port or URL" },
  { name: "agent.ip", kind: "string", default: "", help: "address other agents ping this agent at (default: first non-loopback IPv4)" },
  { name: "agent.probe.interval", kind: "duration", default: "15s", min: 100, help: "one probe round per target per interval" },
  { name: "agent.sync.interval", kind: "duration", default: "1m", min: 100, help: "target pool refresh interval" },
  { name: "log.level", kind: "string", default: "info", choices: LOG_LEVELS, help: "log level: debug, info, warn, error" },
];

const f = parseFlagsOrExit("agent", "ProberMesh agent", VERSION, FLAGS, process.argv.slice(2));
const ip = (f["agent.ip"] as string) || defaultAgentIp();
if (!ip || isIP(ip) === 0) {
  process.stderr.write(`agent: ${ip ? `invalid value "${ip}" for flag -agent.ip: not an IP address` : "no non-loopback IPv4 address found; set -agent.ip"}\n`);
  process.exit(2);
}
const log = createLogger("agent", f["log.level"] as string);
let region: string;
try {
  const r = await discoverRegion(f["agent.region"] as string);
  region = r.region;
  log.info({ region, source: r.source }, "region");
} catch (e) {
  process.stderr.write(`agent: ${(e as Error).message}\n`);
  process.exit(2);
}
const agent = await startAgent({
  region,
  serverAddr: f["agent.rpc.report.addr"] as string,
  ip,
  probeIntervalMs: f["agent.probe.interval"] as number,
  syncIntervalMs: f["agent.sync.interval"] as number,
  log,
});
const stop = () => {
  log.info("shutting down");
  agent.stop();
  process.exit(0);
};
process.on("SIGINT", stop);
process.on("SIGTERM", stop);
