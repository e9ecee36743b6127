/**
 * The udp kind's common half (lib/probes/kind.ts): the probe file's `udp:` module, parsed straight
 * into the protobuf UdpModule, and its `host:port` targets (lib/probes/host_port.ts): UDP
 * responders, normally other agents' (-agent.udp.listen.port, handed out by dynamic discovery),
 * or fixed ones listed in a `udp` block.
 *
 * A round is a burst of probes like the icmp kind's, spread round-robin over `flows` source ports
 * (one 5-tuple each, so ECMP / LAG hashing pins each flow to one path; NetNORAD, Pingmesh); the
 * responder stamps its receive and send times so the prober subtracts its dwell (docs/probes.md
 * "UDP"). It reports loss, not failed reasons (no failedReasons, as icmp).
 */
import { clone, create, toJson } from "@bufbuild/protobuf";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { z } from "zod";
import { parseDurationMs } from "../../cli/duration.ts";
import { UdpModuleSchema, UdpResultSchema, UdpTargetSchema, type UdpModule } from "../../rpc/gen/probermesh/v1/udp_pb.ts";
import { normaliseHostPortTarget } from "../host_port.ts";
import type { ProbeKind } from "../kind.ts";
import { durationString } from "../schema_types.ts";
import { HEADER_LEN, MAX_PROBE_LEN } from "./packet.ts";
import { MAX_DSCP, UDP_DEFAULTS, UDP_FLOW_PORTS, UDP_MAX_FLOWS, UDP_MAX_PACKETS } from "./defaults.ts";

/** The `udp:` keys as written in the file; docs/configuration.md lists them from here. */
export const udpKeys = z.strictObject({
  packet_count: z.int().min(1).max(UDP_MAX_PACKETS).optional()
    .describe(`probes per round, 1..${UDP_MAX_PACKETS} (default ${UDP_DEFAULTS.packetCount}), spread round-robin over the flows`),
  interval: durationString.optional().describe(`spacing of the probes of a round to one target (default ${UDP_DEFAULTS.intervalMs}ms)`),
  payload_size: z.int()
    .min(HEADER_LEN, `payload_size must be at least ${HEADER_LEN}: the probe header (magic, nonce, sequence, the responder's times, the HMAC tag)`)
    .max(MAX_PROBE_LEN, `payload_size cannot exceed ${MAX_PROBE_LEN}`)
    .optional()
    .describe(`UDP payload bytes of a probe, ${HEADER_LEN}..${MAX_PROBE_LEN} (default ${UDP_DEFAULTS.payloadSize}): the ${HEADER_LEN}-byte header, then zero padding`),
  timeout: durationString.optional().describe(`how long each probe waits for its reply, and the deadline of the round's name resolution (default ${UDP_DEFAULTS.timeoutMs / 1000}s)`),
  flows: z.int().min(1).max(UDP_MAX_FLOWS).optional()
    .describe(`flows per round, 1..${UDP_MAX_FLOWS} (default ${UDP_DEFAULTS.flows}): one source port each, the first ports of the agent's -agent.udp.flow.ports (default ${UDP_FLOW_PORTS}; at most that many flows), so each flow is one 5-tuple that ECMP / LAG hashing pins to one path; a flow losing much while the others lose little is lossy (prober_udp_flows_lossy)`),
  dscp: z.int().min(0).max(MAX_DSCP).optional()
    .describe(`DSCP (RFC 2474) of the probes, 0..${MAX_DSCP} (default ${UDP_DEFAULTS.dscp}), in the IP TOS / IPv6 traffic class byte; the responder answers with the same DSCP, so a queue class is measured both ways`),
  preferred_ip_protocol: z.enum(["ip4", "ip6"]).optional().describe(`address family tried first for a name (default ${UDP_DEFAULTS.preferredIpProtocol})`),
  ip_protocol_fallback: z.boolean().optional().describe(`use the other family when the preferred one has no address (default ${UDP_DEFAULTS.ipProtocolFallback})`),
});

/** The `udp:` module of a probe-file block, parsed into the protobuf UdpModule with defaults filled in. */
const udpModuleSchema = udpKeys.transform((m): UdpModule =>
  create(UdpModuleSchema, {
    packetCount: m.packet_count ?? UDP_DEFAULTS.packetCount,
    interval: durationFromMs(m.interval ? parseDurationMs(m.interval) : UDP_DEFAULTS.intervalMs),
    payloadSize: m.payload_size ?? UDP_DEFAULTS.payloadSize,
    timeout: durationFromMs(m.timeout ? parseDurationMs(m.timeout) : UDP_DEFAULTS.timeoutMs),
    flows: m.flows ?? UDP_DEFAULTS.flows,
    dscp: m.dscp ?? UDP_DEFAULTS.dscp,
    preferredIpProtocol: m.preferred_ip_protocol ?? UDP_DEFAULTS.preferredIpProtocol,
    ipProtocolFallback: m.ip_protocol_fallback ?? UDP_DEFAULTS.ipProtocolFallback,
  }),
);

export const udpKind: ProbeKind<"udp"> = {
  type: "udp",
  resultSchema: UdpResultSchema,
  keys: udpKeys,
  moduleSchema: () => udpModuleSchema,
  defaultModule: () => udpModuleSchema.parse({}),
  normaliseTarget: normaliseHostPortTarget,
  targetDescription: "host:port",
  target: (targetRegion, address, module) => create(UdpTargetSchema, { targetRegion, address, module }),
  moduleJson: (m) => toJson(UdpModuleSchema, m),
  redactModule: (m) => clone(UdpModuleSchema, m), // no secrets
  addressOf: (t) => t.address,
};
