/**
 * The ICMP kind's common half (lib/probes/kind.ts): the probe file's `icmp:` module, parsed
 * straight into the protobuf IcmpModule, and ICMP target addressing (IP literal or host name).
 */
import { clone, create, toJson } from "@bufbuild/protobuf";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { z } from "zod";
import { parseDurationMs } from "../../cli/duration.ts";
import { IcmpModuleSchema, IcmpResultSchema, IcmpTargetSchema, type IcmpModule } from "../../rpc/gen/probermesh/v1/icmp_pb.ts";
import { isHostOrIp } from "../address.ts";
import type { ProbeKind } from "../kind.ts";
import { durationString } from "../schema_types.ts";
import { ICMP_DEFAULTS } from "./defaults.ts";

/** The `icmp:` keys as written in the file; docs/configuration.md lists them from here. */
export const icmpKeys = z.strictObject({
  packet_count: z.int().min(1).max(10_000).optional().describe(`echo requests per round, 1..10000 (default ${ICMP_DEFAULTS.packetCount})`),
  interval: durationString.optional().describe(`spacing of the echo requests to one target (default ${ICMP_DEFAULTS.intervalMs}ms)`),
  payload_size: z.int().min(16).max(65_000).optional().describe(`payload bytes after the 8-byte ICMP header, 16..65000 (default ${ICMP_DEFAULTS.payloadSize}); the first 8 carry the agent's token, the rest a pattern that reveals corruption`),
  timeout: durationString.optional().describe(`how long each request waits for its reply, and the deadline of the round's name resolution (default ${ICMP_DEFAULTS.timeoutMs / 1000}s)`),
});

/** The `icmp:` module of a probe-file block, parsed into the protobuf IcmpModule with defaults filled in. */
const icmpModuleSchema = icmpKeys.transform((m): IcmpModule =>
    create(IcmpModuleSchema, {
      packetCount: m.packet_count ?? ICMP_DEFAULTS.packetCount,
      interval: durationFromMs(m.interval ? parseDurationMs(m.interval) : ICMP_DEFAULTS.intervalMs),
      payloadSize: m.payload_size ?? ICMP_DEFAULTS.payloadSize,
      timeout: durationFromMs(m.timeout ? parseDurationMs(m.timeout) : ICMP_DEFAULTS.timeoutMs),
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
