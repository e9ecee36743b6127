/** The server's flags (docs/flags.md is generated from this list by `npm run docs`). */
import type { FlagSpec } from "../cli/flags.ts";
import { PUSH_QUEUE_MAX_RESULTS } from "./lane.ts";
import { LOG_FLAGS } from "../log.ts";
import { DISCOVERY_MODES } from "./pool.ts";

export const SERVER_FLAGS: FlagSpec[] = [
  { name: "server.rpc.listen.addr", kind: "string", default: "localhost:6000", help: "Connect-RPC listen address for agents (HTTP/1.1 and h2c)" },
  { name: "server.http.listen.addr", kind: "string", default: "localhost:6001", help: "HTTP listen address: /metrics, /-/healthy, /-/ready, /-/targets, /-/reload, web view" },
  { name: "server.probe.file", kind: "string", default: "", help: "probe list file (YAML); required when discovery is static" },
  { name: "server.icmp.discovery", kind: "string", default: "dynamic", choices: [...DISCOVERY_MODES], help: "static: ICMP targets from the file only; dynamic: file targets merged with known agents' IPs per region (silent ones until forgotten)" },
  { name: "server.aggregation.interval", kind: "duration", default: "15s", min: 100, help: "aggregation window" },
  { name: "server.series.cache.ratio", kind: "number", default: "5", min: 1, help: "an agent silent, or a series without data, for ratio x interval is dead / deleted" },
  { name: "server.mesh.peers.per.region", kind: "number", default: "0", min: 0, integer: true, help: "dynamic mesh: each agent probes at most N agents of each other region, chosen by rendezvous hashing, plus those it alone must cover so every agent is probed from every other region (docs/aggregation.md \"Peer subsets\"); 0 = every agent (the full mesh). File targets are never subsetted" },
  { name: "server.pool.refetch.rate", kind: "number", default: "50", min: 0, help: "agents told per second at most that their target pool changed (a heartbeat's pool_version); the others keep probing their pool and are told at a later heartbeat, so a join or reload at thousands of agents does not queue thousands of pool answers at once (docs/scale.md \"Pool answers\"); 0 = no limit" },
  { name: "server.push.queue.max.results", kind: "number", default: String(PUSH_QUEUE_MAX_RESULTS), min: 1, integer: true, help: "results of pushes waiting at most for the server's background lane (pushes are filed there in slices, so heartbeats and pool fetches are answered between them); a push arriving beyond it is answered unavailable and the agent sends it again later (docs/scale.md \"The server's thread\")" },
  { name: "server.probe.self", kind: "bool", default: "false", help: "also give agents their own region's targets" },
  { name: "server.rpc.token.file", kind: "string", default: "", help: "agent tokens, one per line (# comments), each optionally followed by the regions it may act for; every RPC then needs Authorization: Bearer <token>. Re-read on SIGHUP" },
  { name: "server.rpc.tls.cert.file", kind: "string", default: "", help: "TLS certificate (PEM) of the RPC port: HTTP/2 and HTTP/1.1 over TLS (ALPN). Re-read on SIGHUP" },
  { name: "server.rpc.tls.key.file", kind: "string", default: "", help: "TLS private key (PEM) of the RPC port. Re-read on SIGHUP" },
  { name: "server.rpc.tls.client.ca.file", kind: "string", default: "", help: "CA bundle (PEM) for mutual TLS: agents must present a certificate it signed" },
  { name: "server.rpc.insecure", kind: "bool", default: "false", help: "allow a non-loopback RPC listener without -server.rpc.token.file (warned at every start)" },
  { name: "server.web.config.file", kind: "string", default: "", help: "exporter-toolkit web config for the HTTP side: tls_server_config, basic_auth_users, http_server_config.headers" },
  { name: "server.web.history.retention", kind: "duration", default: "1h", min: 1000, help: "how long the web console's per-pair history (/api/v1/pair) is kept in memory" },
  { name: "server.web.enable-lifecycle", kind: "bool", default: "false", help: "serve POST /-/reload (SIGHUP always reloads)" },
  { name: "server.registry.max.agents", kind: "number", default: "10000", min: 1, help: "agents the registry holds at most; heartbeats of new agents beyond it get resource_exhausted" },
  { name: "server.registry.max.regions", kind: "number", default: "1000", min: 1, help: "distinct regions the registry holds at most; beyond it, resource_exhausted" },
  { name: "server.agent.forget.after", kind: "duration", default: "1h", min: 0, help: "an agent silent this long after it was declared dead is forgotten: until then it stays a mesh target (a cut-off region reads loss 1, not nothing) and prober_agent_is_alive 0; agents that stop with SIGTERM/SIGINT leave at once (Deregister)" },
  { name: "server.registry.url", kind: "string", default: "", help: "shared agent registry for several servers: redis://host:port/db (default: in-process, one server)" },
  { name: "server.mesh.key.file", kind: "string", default: "", help: "file whose content (SHA-256) is the mesh key handed to agents in heartbeats: their UDP probes carry an HMAC under it and responders answer only those. Give every server of a mesh the same file; without it, servers of one -server.registry.url share a random key through Redis, and a lone server makes a random key at each start" },
  { name: "check.config", kind: "bool", default: "false", help: "check -server.probe.file and -server.web.config.file, print every error with its line, exit 0 (valid) or 2; starts nothing" },
  ...LOG_FLAGS,
];
