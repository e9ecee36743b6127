/** The agent's flags (docs/flags.md is generated from this list by `npm run docs`). */
import type { FlagSpec } from "../cli/flags.ts";
import { LOG_FLAGS } from "../log.ts";

export const AGENT_FLAGS: FlagSpec[] = [
  { name: "agent.region", aliases: ["region"], kind: "string", default: "", help: "region of this agent; empty: env PROBER_REGION, then cloud metadata" },
  { name: "agent.rpc.report.addr", aliases: ["server.rpc.addr"], kind: "string", default: "localhost:6000", help: "server RPC address, host:port or URL; a comma-separated list fails over in order (servers sharing -server.registry.url)" },
  { name: "agent.rpc.failback.interval", kind: "duration", default: "30s", min: 100, help: "with several servers: how often to try the first one again while on another" },
  { name: "agent.ip", kind: "string", default: "", help: "address other agents ping this agent at (default: first non-loopback IPv4)" },
  { name: "agent.probe.interval", kind: "duration", default: "15s", min: 100, help: "one probe round per target per interval" },
  { name: "agent.sync.interval", kind: "duration", default: "1m", min: 100, help: "target pool refresh interval" },
  { name: "agent.token.file", kind: "string", default: "", help: "file holding the agent token sent as Authorization: Bearer (default: env PROBER_TOKEN)" },
  { name: "agent.rpc.tls.ca.file", kind: "string", default: "", help: "CA bundle (PEM) trusted for an https:// server address (default: the system roots)" },
  { name: "agent.rpc.tls.cert.file", kind: "string", default: "", help: "client certificate (PEM) for mutual TLS with the server" },
  { name: "agent.rpc.tls.key.file", kind: "string", default: "", help: "client private key (PEM) for mutual TLS with the server" },
  ...LOG_FLAGS,
];
