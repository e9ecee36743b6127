/**
 * PushResults read without decoding its results (docs/scale.md "The server's thread").
 *
 * A push carries thousands of results. Decoded by Connect before the service sees it, a push of
 * 5,000 results held the server's one thread for tens of milliseconds in one go (a quarter to a
 * third of its busy time at 20,000 results a second), and pushes waiting in the lane held a
 * message object per result (with its timestamp, arrays and strings): millions of objects that
 * every full garbage collection walked. Binary pushes are therefore read with RAW_PUSH_SCHEMA,
 * the same message in which every result list is `repeated bytes`: a repeated message field and a
 * repeated bytes field are written alike on the wire (protobuf encoding: both are length-delimited
 * records of the field's number), so the request decodes to the results' own bytes (views of the
 * request body, no copy), and each result is decoded when the lane files it (resultAt()), a step
 * at a time, and is garbage right after.
 *
 * The schema is derived at start from the generated PushResultsRequest (its field numbers are
 * written once, in proto/): only the fields of PROBER_TYPES change type. JSON pushes (other
 * clients) are decoded by Connect as before; the service takes both forms (PushIn).
 */
import { clone, createFileRegistry, fromBinary, type DescFile, type DescMessage, type DescMethod } from "@bufbuild/protobuf";
import { FieldDescriptorProto_Type, FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import { PROBER_TYPES, type ProbeKind, type ProberType, type ResultOf } from "../probes/kind.ts";
import { PROBE_KINDS } from "../probes/kinds.ts";
import { file_probermesh_v1_probermesh, ProberMeshService, PushResultsRequestSchema, type PushResultsRequest } from "../rpc/gen/probermesh/v1/probermesh_pb.ts";

/** A PushResults request as the service sees it: a binary push's results are still encoded. */
export type PushIn = Omit<PushResultsRequest, ProberType> & { [K in ProberType]: (ResultOf<K> | Uint8Array)[] };

/** The package of the derived schema (never on the wire: only field numbers are). */
const RAW_PACKAGE = "probermesh.v1.raw";

/** PushResultsRequest with each result list as `repeated bytes`. */
export const RAW_PUSH_SCHEMA: DescMessage = (() => {
  const origin = file_probermesh_v1_probermesh;
  const file = clone(FileDescriptorProtoSchema, origin.proto);
  const msg = file.messageType.find((m) => m.name === PushResultsRequestSchema.name)!;
  const results = new Set(PROBER_TYPES.map((t) => PushResultsRequestSchema.field[t]!.name));
  for (const f of msg.field) {
    if (!results.has(f.name)) continue;
    f.type = FieldDescriptorProto_Type.BYTES;
    f.typeName = "";
  }
  file.name = "probermesh/v1/probermesh_raw.proto";
  file.package = RAW_PACKAGE;
  file.messageType = [msg];
  file.service = [];
  file.enumType = [];
  file.dependency = [origin.proto.name, ...file.dependency];
  const files = new Map<string, DescFile>([origin, ...origin.dependencies].map((f) => [f.proto.name, f]));
  return createFileRegistry(file, (name) => files.get(name)).getMessage(`${RAW_PACKAGE}.${msg.name}`)!;
})();

/** ProberMeshService.PushResults reading its request with RAW_PUSH_SCHEMA (register for binary requests only). */
export const RAW_PUSH_METHOD = { ...ProberMeshService.method.pushResults, input: RAW_PUSH_SCHEMA } as unknown as DescMethod;

/**
 * Result `i` of a push's `type` list, decoded if it is still bytes (not kept: the list keeps the
 * compact bytes, and a caller that needs a result twice, the warm-up check, decodes it twice);
 * undefined when its bytes are not a valid result message (the caller rejects it as invalid).
 */
export function resultAt<K extends ProberType>(type: K, list: (ResultOf<K> | Uint8Array)[], i: number): ResultOf<K> | undefined {
  const item = list[i]!;
  if (!(item instanceof Uint8Array)) return item;
  try {
    return fromBinary((PROBE_KINDS[type] as ProbeKind<K>).resultSchema, item);
  } catch {
    return undefined;
  }
}
