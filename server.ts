#!/usr/bin/env bun
/**
 * ProberMesh server: hands out targets, receives results, aggregates per region pair and serves
 * Prometheus metrics. Flags as in SPEC.md; logic in lib/server/.
 */
import { parseFlagsOrExit, type FlagSpec } from "./lib/cli/flags.ts";
import { createLogger, LOG_LEVELS } from "./lib/log.ts";
import { ConfigError } from "./lib/targets/config.ts";
import type { Discovery } from "./lib/targets/pool.ts";
import { startServer } from "./lib/server/server.ts";
import { VERSION } from "./lib/version.ts";

const FLAGS: FlagSpec[] = [
  { name: "server.rpc.listen.addr", kind: "string", default: "localhost:6000", help: "Connect-RPC listen address for agents (HTTP/1.1 and h2c)" },
  { name: "server.http.listen.addr", kind: "string", default: "localhost:6001", help: "HTTP listen address: /metrics, /-/healthy, /-/ready, /-/targets, /-/reload, web view" },
  { name: "server.probe.file", kind: "string", default: "", help: "probe list file (YAML); required when discovery is static" },
  { name: "server.icmp.discovery", kind: "string", default: "dynamic", choices: ["static", "dynamic"], help: "static: ICMP targets from the file only; dynamic: file targets merged with live agents' IPs per region" },
  { name: "server.aggregation.interval", kind: "duration", default: "15s", min: 100, help: "aggregation window" },
  { name: "server.series.cache.ratio", kind: "number", default: "5", min: 1, help: "an agent silent, or a series without data, for ratio x interval is dead / deleted" },
  { name: "server.probe.self", kind: "bool", default: "false", help: "also give agents their own region's targets" },
  { name: "log.level", kind: "string", default: "info", choices: LOG_LEVELS, help: "log level: debug, info, warn, error" },
];

const f = parseFlagsOrExit("server", "ProberMesh server", VERSION, FLAGS, process.argv.slice(2));
const discovery = f["server.icmp.discovery"] as Discovery;
if (discovery === "static" && !f["server.probe.file"]) {
  process.stderr.write("server: flag -server.probe.file is required when -server.icmp.discovery is static\n");
  process.exit(2);
}
const log = createLogger("server", f["log.level"] as string);
try {
  const srv = await startServer({
    rpcListenAddr: f["server.rpc.listen.addr"] as string,
    httpListenAddr: f["server.http.listen.addr"] as string,
    probeFile: f["server.probe.file"] as string,
    discovery,
    aggregationIntervalMs: f["server.aggregation.interval"] as number,
    seriesCacheRatio: f["server.series.cache.ratio"] as number,
    probeSelf: f["server.probe.self"] as boolean,
    log,
  });
  const stop = async () => {
    log.info("shutting down");
    await srv.close();
    process.exit(0);
  };
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);
} catch (e) {
  process.stderr.write(`server: ${(e as Error).message}\n`);
  process.exit(e instanceof ConfigError ? 2 : 1);
}
