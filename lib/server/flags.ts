/** The server's flags (docs/flags.md is generated from this list by `npm run docs`). */
import type { FlagSpec } from "../cli/flags.ts";
import { LOG_LEVELS } from "../log.ts";
import { DISCOVERY_MODES } from "./pool.ts";

export const SERVER_FLAGS: FlagSpec[] = [
  { name: "server.rpc.listen.addr", kind: "string", default: "localhost:6000", help: "Connect-RPC listen address for agents (HTTP/1.1 and h2c)" },
  { name: "server.http.listen.addr", kind: "string", default: "localhost:6001", help: "HTTP listen address: /metrics, /-/healthy, /-/ready, /-/targets, /-/reload, web view" },
  { name: "server.probe.file", kind: "string", default: "", help: "probe list file (YAML); required when discovery is static" },
  { name: "server.icmp.discovery", kind: "string", default: "dynamic", choices: [...DISCOVERY_MODES], help: "static: ICMP targets from the file only; dynamic: file targets merged with live agents' IPs per region" },
  { name: "server.aggregation.interval", kind: "duration", default: "15s", min: 100, help: "aggregation window" },
  { name: "server.series.cache.ratio", kind: "number", default: "5", min: 1, help: "an agent silent, or a series without data, for ratio x interval is dead / deleted" },
  { name: "server.probe.self", kind: "bool", default: "false", help: "also give agents their own region's targets" },
  { name: "log.level", kind: "string", default: "info", choices: [...LOG_LEVELS], help: "log level: debug, info, warn, error" },
];
