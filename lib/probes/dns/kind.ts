/**
 * The DNS kind's common half (lib/probes/kind.ts): the probe file's `dns:` module (blackbox_exporter's
 * <dns_probe> names), parsed into the protobuf DnsModule, and target addressing.
 * STUB: the dns kind's owner replaces this file.
 */
import { clone, create, toJson } from "@bufbuild/protobuf";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { z } from "zod";
import { parseDurationMs } from "../../cli/duration.ts";
import { DnsModuleSchema, DnsResultSchema, DnsTargetSchema, type DnsModule } from "../../rpc/gen/probermesh/v1/dns_pb.ts";
import type { ProbeKind } from "../kind.ts";
import { FAILED_REASON_DOCS } from "./failed_reason.ts";
import { durationString } from "../schema_types.ts";

/** The `dns:` keys as written in the file; docs/configuration.md lists them from here. */
export const dnsKeys = z.strictObject({
  timeout: durationString.optional().describe("deadline of the whole probe (default 10s)"),
});

const dnsModuleSchema = dnsKeys.transform((m): DnsModule => create(DnsModuleSchema, { timeout: durationFromMs(m.timeout ? parseDurationMs(m.timeout) : 10_000) }));

export const dnsKind: ProbeKind<"dns"> = {
  type: "dns",
  resultSchema: DnsResultSchema,
  keys: dnsKeys,
  failedReasons: FAILED_REASON_DOCS,
  moduleSchema: () => dnsModuleSchema,
  defaultModule: () => dnsModuleSchema.parse({}),
  normaliseTarget: (s) => (/^[^\s/]+:\d+$/.test(s) ? s : null),
  targetDescription: "host:port",
  target: (targetRegion, address, module) => create(DnsTargetSchema, { targetRegion, address, module }),
  moduleJson: (m) => toJson(DnsModuleSchema, m),
  redactModule: (m) => clone(DnsModuleSchema, m),
  addressOf: (t) => t.address,
};
