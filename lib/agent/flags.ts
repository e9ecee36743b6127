/** The agent's flags (docs/flags.md is generated from this list by `npm run docs`). */
import type { FlagSpec } from "../cli/flags.ts";
import { LOG_FLAGS } from "../log.ts";
import { OUTBOX_MAX_BYTES_DEFAULT } from "./outbox.ts";
import { TCP_FLOW_PORTS } from "../probes/tcp/defaults.ts";
import { UDP_FLOW_PORTS } from "../probes/udp/defaults.ts";
import { RESPONDER_MAX_RATE, RESPONDER_PER_SOURCE_RATE } from "../probes/udp/responder_limits.ts";

/** Default UDP responder and TCP listener ports of the flow mesh. */
export const UDP_LISTEN_PORT = 6010;
export const TCP_LISTEN_PORT = 6011;

export const AGENT_FLAGS: FlagSpec[] = [
  { name: "agent.region", aliases: ["region"], kind: "string", default: "", help: "region of this agent; empty: env PROBER_REGION, then cloud metadata" },
  { name: "agent.rpc.report.addr", aliases: ["server.rpc.addr"], kind: "string", default: "localhost:6000", help: "server RPC address, host:port or URL; a comma-separated list fails over in order (servers sharing -server.registry.url)" },
  { name: "agent.rpc.failback.interval", kind: "duration", default: "30s", min: 100, help: "with several servers: how often to try the first one again while on another" },
  { name: "agent.ip", kind: "string", default: "", help: "address other agents ping this agent at (default: first non-loopback IPv4)" },
  { name: "agent.probe.interval", kind: "duration", default: "15s", min: 100, help: "one probe round per target per interval" },
  { name: "agent.probe.error.interval", kind: "duration", default: "1s", min: 100, help: "re-probe a target in error state (its last round lost packets or failed) this often, start to start, rounds never overlapping" },
  { name: "agent.probe.error.clear", kind: "duration", default: "1m", min: 0, help: "a target leaves error state after this long without an error" },
  { name: "agent.probe.error.budget", kind: "number", integer: true, default: "1000", min: 0, help: "extra packets per second all re-probes together may send; 0 disables re-probing (and error-state traces)" },
  { name: "agent.trace.interval", kind: "duration", default: "5m", min: 0, help: "trace the path to a target when its rounds fail (entering error state, and again while in it) at most once per this interval; 0 disables path traces" },
  { name: "agent.trace.probes", kind: "number", integer: true, default: "10", min: 1, max: 100, help: "probes per hop of a path trace (mtr --report-cycles)" },
  { name: "agent.trace.probe.interval", kind: "duration", default: "1s", min: 10, help: "time between a path trace's probe cycles (mtr -i)" },
  { name: "agent.trace.max.hops", kind: "number", integer: true, default: "30", min: 1, max: 64, help: "highest TTL / hop limit a path trace tries (mtr -m)" },
  { name: "agent.sync.interval", kind: "duration", default: "1m", min: 100, help: "target pool refresh interval" },
  { name: "agent.outbox.max.bytes", kind: "number", integer: true, default: String(OUTBOX_MAX_BYTES_DEFAULT), min: 65536, help: "cap on the encoded bytes of results kept unsent while the server is away (64 MiB at ~137 bytes per ICMP result: about 2 h of 1,000 targets every 15 s, 12 min of 10,000); when full the oldest are dropped, logged and counted in prober_agent_dropped_points_total" },
  { name: "agent.shutdown.timeout", kind: "duration", default: "5s", min: 0, help: "on SIGTERM/SIGINT: how long the agent may take to push what it has queued and say goodbye (Deregister) before it exits" },
  { name: "agent.token.file", kind: "string", default: "", help: "file holding the agent token sent as Authorization: Bearer (default: env PROBER_TOKEN)" },
  { name: "agent.rpc.tls.ca.file", kind: "string", default: "", help: "CA bundle (PEM) trusted for an https:// server address (default: the system roots)" },
  { name: "agent.rpc.tls.cert.file", kind: "string", default: "", help: "client certificate (PEM) for mutual TLS with the server" },
  { name: "agent.rpc.tls.key.file", kind: "string", default: "", help: "client private key (PEM) for mutual TLS with the server" },
  { name: "agent.udp.listen.port", kind: "number", integer: true, default: String(UDP_LISTEN_PORT), min: 0, max: 65535, help: "UDP port of this agent's responder, which answers other agents' udp probes (only those tagged with the server's mesh key, rate-limited); announced to the server, which hands it out as a udp target; 0 = no responder" },
  { name: "agent.tcp.listen.port", kind: "number", integer: true, default: String(TCP_LISTEN_PORT), min: 0, max: 65535, help: "TCP port this agent accepts other agents' tcp connect probes on (each connection is closed at once, nothing is sent); announced to the server, which hands it out as a tcp target; 0 = no listener" },
  { name: "agent.udp.flow.ports", kind: "string", default: UDP_FLOW_PORTS, help: "source ports of the udp kind's flows, FIRST-LAST: one port per flow (one 5-tuple each, so ECMP / LAG hashing pins each flow to one path); a udp module's flows takes the first ones; allow them in firewalls" },
  { name: "agent.tcp.flow.ports", kind: "string", default: TCP_FLOW_PORTS, help: "source ports of the tcp kind's connect flows (a tcp module with flows), FIRST-LAST, as -agent.udp.flow.ports" },
  { name: "agent.udp.responder.max.rate", kind: "number", integer: true, default: String(RESPONDER_MAX_RATE), min: 1, help: `replies per second the UDP responder sends in all (one source IP gets at most min(this, ${RESPONDER_PER_SOURCE_RATE})); beyond, probes go unanswered and are counted as dropped in the agent's log. The default covers hundreds of agents probing this one, error-state re-probes included` },
  ...LOG_FLAGS,
];
