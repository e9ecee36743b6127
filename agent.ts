#!/usr/bin/env bun
/**
 * ProberMesh agent: probes the targets the server hands to its region (ICMP mesh and HTTP) and
 * pushes results. Flags in docs/flags.md; logic in lib/agent/.
 */
import { readFileSync } from "node:fs";
import { isIP } from "node:net";
import { parseFlagsOrExit } from "./lib/cli/flags.ts";
import { AGENT_FLAGS } from "./lib/agent/flags.ts";
import { createLogger } from "./lib/log.ts";
import { defaultAgentIp, startAgent } from "./lib/agent/agent.ts";
import { discoverRegion } from "./lib/agent/region.ts";
import { versionLine } from "./lib/version.ts";
import { parsePortRange, type PortRange } from "./lib/probes/flow/ports.ts";

const f = parseFlagsOrExit("agent", "ProberMesh agent", versionLine(), AGENT_FLAGS, process.argv.slice(2));
const ip = (f["agent.ip"] as string) || defaultAgentIp();
if (!ip || isIP(ip) === 0) {
  process.stderr.write(`agent: ${ip ? `invalid value "${ip}" for flag -agent.ip: not an IP address` : "no non-loopback IPv4 address found; set -agent.ip"}\n`);
  process.exit(2);
}
/** A flow port range flag, or exit 2 naming the flag and what is wrong. */
const portRangeFlag = (name: string): PortRange => {
  try {
    return parsePortRange(f[name] as string);
  } catch (e) {
    process.stderr.write(`agent: invalid value "${f[name]}" for flag -${name}: ${(e as Error).message}\n`);
    process.exit(2);
  }
};
const udpFlowPorts = portRangeFlag("agent.udp.flow.ports");
const tcpFlowPorts = portRangeFlag("agent.tcp.flow.ports");
const log = createLogger("agent", f["log.level"] as string, f["log.format"] as "auto" | "text" | "json");
let region: string;
try {
  const r = await discoverRegion(f["agent.region"] as string);
  region = r.region;
  log.info({ region, source: r.source }, "region");
} catch (e) {
  process.stderr.write(`agent: ${(e as Error).message}\n`);
  process.exit(2);
}
let token = process.env.PROBER_TOKEN?.trim() ?? "";
const tokenFile = f["agent.token.file"] as string;
if (tokenFile) {
  try {
    token = readFileSync(tokenFile, "utf8").trim();
  } catch (e) {
    process.stderr.write(`agent: flag -agent.token.file: cannot read ${tokenFile}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}\n`);
    process.exit(2);
  }
}
let agent: Awaited<ReturnType<typeof startAgent>>;
try {
  agent = await startAgent({
    region,
    serverAddr: f["agent.rpc.report.addr"] as string,
    token,
    tlsCaFile: f["agent.rpc.tls.ca.file"] as string,
    tlsCertFile: f["agent.rpc.tls.cert.file"] as string,
    tlsKeyFile: f["agent.rpc.tls.key.file"] as string,
    failbackMs: f["agent.rpc.failback.interval"] as number,
    ip,
    probeIntervalMs: f["agent.probe.interval"] as number,
    syncIntervalMs: f["agent.sync.interval"] as number,
    error: {
      intervalMs: f["agent.probe.error.interval"] as number,
      clearMs: f["agent.probe.error.clear"] as number,
      budgetPps: f["agent.probe.error.budget"] as number,
    },
    trace: {
      intervalMs: f["agent.trace.interval"] as number,
      probes: f["agent.trace.probes"] as number,
      probeIntervalMs: f["agent.trace.probe.interval"] as number,
      maxHops: f["agent.trace.max.hops"] as number,
    },
    flows: {
      udpListenPort: f["agent.udp.listen.port"] as number,
      tcpListenPort: f["agent.tcp.listen.port"] as number,
      responderMaxRate: f["agent.udp.responder.max.rate"] as number,
      udpFlowPorts,
      tcpFlowPorts,
    },
    outboxMaxBytes: f["agent.outbox.max.bytes"] as number,
    log,
  });
} catch (e) {
  process.stderr.write(`agent: ${(e as Error).message}\n`);
  process.exit(2);
}
// SIGTERM/SIGINT: push what is queued and say goodbye (Deregister) within -agent.shutdown.timeout,
// so a planned scale-in raises no loss alarm. A second signal exits at once.
let stopping = false;
const stop = async (signal: string) => {
  if (stopping) {
    agent.stop();
    process.exit(1);
  }
  stopping = true;
  log.info({ signal }, "shutting down: pushing queued results and saying goodbye");
  await agent.shutdown(f["agent.shutdown.timeout"] as number);
  process.exit(0);
};
process.on("SIGINT", () => void stop("SIGINT"));
process.on("SIGTERM", () => void stop("SIGTERM"));
