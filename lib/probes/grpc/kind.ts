/**
 * The gRPC kind's common half (lib/probes/kind.ts): the probe file's `grpc:` module (blackbox_exporter's
 * <grpc_probe> names), parsed into the protobuf GrpcModule, and target addressing.
 * STUB: the grpc kind's owner replaces this file.
 */
import { clone, create, toJson } from "@bufbuild/protobuf";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { z } from "zod";
import { parseDurationMs } from "../../cli/duration.ts";
import { GrpcModuleSchema, GrpcResultSchema, GrpcTargetSchema, type GrpcModule } from "../../rpc/gen/probermesh/v1/grpc_pb.ts";
import type { ProbeKind } from "../kind.ts";
import { FAILED_REASON_DOCS } from "./failed_reason.ts";
import { durationString } from "../schema_types.ts";

/** The `grpc:` keys as written in the file; docs/configuration.md lists them from here. */
export const grpcKeys = z.strictObject({
  timeout: durationString.optional().describe("deadline of the whole probe (default 10s)"),
});

const grpcModuleSchema = grpcKeys.transform((m): GrpcModule => create(GrpcModuleSchema, { timeout: durationFromMs(m.timeout ? parseDurationMs(m.timeout) : 10_000) }));

export const grpcKind: ProbeKind<"grpc"> = {
  type: "grpc",
  resultSchema: GrpcResultSchema,
  keys: grpcKeys,
  failedReasons: FAILED_REASON_DOCS,
  moduleSchema: () => grpcModuleSchema,
  defaultModule: () => grpcModuleSchema.parse({}),
  normaliseTarget: (s) => (/^[^\s/]+:\d+$/.test(s) ? s : null),
  targetDescription: "host:port",
  target: (targetRegion, address, module) => create(GrpcTargetSchema, { targetRegion, address, module }),
  moduleJson: (m) => toJson(GrpcModuleSchema, m),
  redactModule: (m) => clone(GrpcModuleSchema, m),
  addressOf: (t) => t.address,
};
