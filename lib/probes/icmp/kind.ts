/**
 * The ICMP kind's common half (lib/probes/kind.ts): the probe file's `icmp:` module, parsed
 * straight into the protobuf IcmpModule, and ICMP target addressing (IP literal or host name).
 */
import { create, toJson } from "@bufbuild/protobuf";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { z } from "zod";
import { parseDurationMs } from "../../cli/duration.ts";
import { IcmpModuleSchema, IcmpTargetSchema, type IcmpModule } from "../../rpc/gen/probermesh/v1/probermesh_pb.ts";
import { isHostOrIp } from "../address.ts";
import type { ProbeKind } from "../kind.ts";
import { durationString } from "../schema_types.ts";
import { ICMP_DEFAULTS } from "./defaults.ts";

/** The `icmp:` module of a probe-file block (docs/configuration.md). */
const icmpModuleSchema = z
  .strictObject({
    packet_count: z.int().min(1).max(10_000).optional(),
    interval: durationString.optional(),
    payload_size: z.int().min(16).max(65_000).optional(),
    timeout: durationString.optional(),
  })
  .transform((m): IcmpModule =>
    create(IcmpModuleSchema, {
      packetCount: m.packet_count ?? ICMP_DEFAULTS.packetCount,
      interval: durationFromMs(m.interval ? parseDurationMs(m.interval) : ICMP_DEFAULTS.intervalMs),
      payloadSize: m.payload_size ?? ICMP_DEFAULTS.payloadSize,
      timeout: durationFromMs(m.timeout ? parseDurationMs(m.timeout) : ICMP_DEFAULTS.timeoutMs),
    }),
  );

export const icmpKind: ProbeKind<"icmp"> = {
  type: "icmp",
  moduleSchema: () => icmpModuleSchema,
  defaultModule: () => icmpModuleSchema.parse({}),
  normaliseTarget: (s) => (isHostOrIp(s) ? s : null),
  targetDescription: "IP address or host name",
  target: (targetRegion, address, module) => create(IcmpTargetSchema, { targetRegion, address, module }),
  moduleJson: (m) => toJson(IcmpModuleSchema, m),
  addressOf: (t) => t.address,
};
