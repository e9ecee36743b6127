/**
 * The TCP kind's common half (lib/probes/kind.ts): the probe file's `tcp:` module (blackbox_exporter's
 * <tcp_probe> names), parsed into the protobuf TcpModule, and target addressing.
 * STUB: the tcp kind's owner replaces this file.
 */
import { clone, create, toJson } from "@bufbuild/protobuf";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { z } from "zod";
import { parseDurationMs } from "../../cli/duration.ts";
import { TcpModuleSchema, TcpResultSchema, TcpTargetSchema, type TcpModule } from "../../rpc/gen/probermesh/v1/tcp_pb.ts";
import type { ProbeKind } from "../kind.ts";
import { FAILED_REASON_DOCS } from "./failed_reason.ts";
import { durationString } from "../schema_types.ts";

/** The `tcp:` keys as written in the file; docs/configuration.md lists them from here. */
export const tcpKeys = z.strictObject({
  timeout: durationString.optional().describe("deadline of the whole probe (default 10s)"),
});

const tcpModuleSchema = tcpKeys.transform((m): TcpModule => create(TcpModuleSchema, { timeout: durationFromMs(m.timeout ? parseDurationMs(m.timeout) : 10_000) }));

export const tcpKind: ProbeKind<"tcp"> = {
  type: "tcp",
  resultSchema: TcpResultSchema,
  keys: tcpKeys,
  failedReasons: FAILED_REASON_DOCS,
  moduleSchema: () => tcpModuleSchema,
  defaultModule: () => tcpModuleSchema.parse({}),
  normaliseTarget: (s) => (/^[^\s/]+:\d+$/.test(s) ? s : null),
  targetDescription: "host:port",
  target: (targetRegion, address, module) => create(TcpTargetSchema, { targetRegion, address, module }),
  moduleJson: (m) => toJson(TcpModuleSchema, m),
  redactModule: (m) => clone(TcpModuleSchema, m),
  addressOf: (t) => t.address,
};
