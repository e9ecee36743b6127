/**
 * The ICMP kind's common half (lib/probes/kind.ts): the probe file's `icmp:` module, parsed
 * straight into the protobuf IcmpModule, and ICMP target addressing (IP literal or host name).
 *
 * Keys: ProberMesh's own round (packet_count, interval, payload_size, timeout: a round is a burst
 * of echoes) and blackbox_exporter's <icmp_probe> options with its names, meaning and validation
 * (its CONFIGURATION.md, config/config.go ICMPProbe.UnmarshalYAML: `"ttl" cannot be negative`,
 * `"ttl" cannot exceed 255`). Stricter where blackbox would only fail at probe time:
 * source_ip_address must be an IP literal, payload_size must fit an IPv4 packet and hold the
 * agent's token. docs/kinds/icmp.md compares the two option by option.
 */
import { isIP } from "node:net";
import { clone, create, toJson } from "@bufbuild/protobuf";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { z } from "zod";
import { parseDurationMs } from "../../cli/duration.ts";
import { IcmpModuleSchema, IcmpResultSchema, IcmpTargetSchema, type IcmpModule } from "../../rpc/gen/probermesh/v1/icmp_pb.ts";
import { isHostOrIp } from "../address.ts";
import type { ProbeKind } from "../kind.ts";
import { durationString } from "../schema_types.ts";
import { ICMP_DEFAULTS, MAX_PAYLOAD_SIZE, MIN_PAYLOAD_SIZE } from "./defaults.ts";

/** The `icmp:` keys as written in the file; docs/kinds/icmp.md lists them from here. */
export const icmpKeys = z.strictObject({
  packet_count: z.int().min(1).max(10_000).optional().describe(`echo requests per round, 1..10000 (default ${ICMP_DEFAULTS.packetCount}); ProberMesh's own (blackbox_exporter sends one)`),
  interval: durationString.optional().describe(`spacing of the echo requests to one target (default ${ICMP_DEFAULTS.intervalMs}ms); ProberMesh's own`),
  payload_size: z.int()
    .min(0, "payload_size cannot be negative")
    .max(MAX_PAYLOAD_SIZE, `payload_size cannot exceed ${MAX_PAYLOAD_SIZE} (the largest echo an IPv4 packet holds)`)
    .refine((n) => !(n > 0 && n < MIN_PAYLOAD_SIZE), `payload_size must be 0 (the default) or at least ${MIN_PAYLOAD_SIZE}: the first 8 payload bytes carry the agent's token`)
    .optional()
    .describe(`ICMP data bytes after the 8-byte echo header, ${MIN_PAYLOAD_SIZE}..${MAX_PAYLOAD_SIZE}; 0 or absent: ${ICMP_DEFAULTS.payloadSize} (blackbox_exporter: its 28-byte text). The first 8 carry the agent's token, the rest a pattern that reveals corruption. The IP packet is 28 (IPv4) or 48 (IPv6) bytes more: with dont_fragment, a path-MTU check`),
  timeout: durationString.optional().describe(`how long each request waits for its reply, and the deadline of the round's name resolution (default ${ICMP_DEFAULTS.timeoutMs / 1000}s); blackbox's module-level timeout, which bounds its single echo`),
  preferred_ip_protocol: z.enum(["ip4", "ip6"]).optional().describe(`address family tried first for a name (default ${ICMP_DEFAULTS.preferredIpProtocol}; blackbox_exporter defaults to ip6)`),
  ip_protocol_fallback: z.boolean().optional().describe(`use the other family when the preferred one has no address (default ${ICMP_DEFAULTS.ipProtocolFallback})`),
  source_ip_address: z.string().refine((s) => isIP(s) !== 0, "must be an IPv4 or IPv6 address").optional()
    .describe("local IP address the agent's ICMP socket is bound to, of the target's family; it must be an address of every agent that probes the block (one that lacks it fails its rounds with the bind error)"),
  dont_fragment: z.boolean().optional()
    .describe("never fragment the echo requests (IPv4: the DF bit, IP_PMTUDISC_DO; IPv6: IPV6_DONTFRAG): with payload_size, a path-MTU check; a request larger than the path MTU fails the round with its error. Default false: IPv4 requests never carry DF and are fragmented where needed. Works on unprivileged ping sockets too, and on IPv6 (blackbox_exporter: IPv4 raw sockets only)"),
  ttl: z.int().min(0, '"ttl" cannot be negative').max(255, '"ttl" cannot exceed 255').optional()
    .describe("TTL (IPv4) / hop limit (IPv6) of the echo requests, 0..255; 0 or absent: the system's (64 on Linux unless net.ipv4.ip_default_ttl says otherwise; blackbox_exporter sets 64). A request that runs out on the way fails with \"time exceeded from ROUTER\""),
});

/** The `icmp:` module of a probe-file block, parsed into the protobuf IcmpModule with defaults filled in. */
const icmpModuleSchema = icmpKeys.transform((m): IcmpModule =>
    create(IcmpModuleSchema, {
      packetCount: m.packet_count ?? ICMP_DEFAULTS.packetCount,
      interval: durationFromMs(m.interval ? parseDurationMs(m.interval) : ICMP_DEFAULTS.intervalMs),
      payloadSize: m.payload_size || ICMP_DEFAULTS.payloadSize,
      timeout: durationFromMs(m.timeout ? parseDurationMs(m.timeout) : ICMP_DEFAULTS.timeoutMs),
      ttl: m.ttl ?? ICMP_DEFAULTS.ttl,
      dontFragment: m.dont_fragment ?? ICMP_DEFAULTS.dontFragment,
      sourceIpAddress: m.source_ip_address ?? "",
      preferredIpProtocol: m.preferred_ip_protocol ?? ICMP_DEFAULTS.preferredIpProtocol,
      ipProtocolFallback: m.ip_protocol_fallback ?? ICMP_DEFAULTS.ipProtocolFallback,
    }),
  );

export const icmpKind: ProbeKind<"icmp"> = {
  type: "icmp",
  resultSchema: IcmpResultSchema,
  keys: icmpKeys,
  moduleSchema: () => icmpModuleSchema,
  defaultModule: () => icmpModuleSchema.parse({}),
  normaliseTarget: (s) => (isHostOrIp(s) ? s : null),
  targetDescription: "IP address or host name",
  target: (targetRegion, address, module) => create(IcmpTargetSchema, { targetRegion, address, module }),
  moduleJson: (m) => toJson(IcmpModuleSchema, m),
  redactModule: (m) => clone(IcmpModuleSchema, m), // no secrets
  addressOf: (t) => t.address,
};
