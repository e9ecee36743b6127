/**
 * Binary GetTargetPool answers from targets encoded once (lib/server/pool.ts poolWireFor()): each
 * target is kept as its GetTargetPoolResponse field (tag, length, message), every target of a
 * pool layout lies back to back in one arena, and an answer copies the runs of consecutive
 * targets it holds (a whole region's segment is one run), so thousands of targets are neither
 * encoded nor written one by one at every fetch.
 *
 * The bytes travel as one unknown field (`$unknown`, written as-is by toBinary): toBinary writes
 * that field's tag, so its data is the first target's length and message followed by every other
 * target's whole field. A protobuf message is the concatenation of its fields (protobuf encoding,
 * "Message Structure"), so the answer is byte for byte the one toBinary would write for the same
 * targets as a message. Only for binary (protobuf) answers: JSON leaves unknown fields out.
 */
import { create, toBinary, type DescField, type DescMessage } from "@bufbuild/protobuf";
import { BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
import { GetTargetPoolResponseSchema, type GetTargetPoolResponse } from "../rpc/gen/probermesh/v1/probermesh_pb.ts";
import type { ProberType, TargetOf } from "../probes/kind.ts";

/** GetTargetPoolResponse's list field of each kind (its number and target message). */
const POOL_FIELDS = Object.fromEntries(GetTargetPoolResponseSchema.fields.map((f) => [f.localName, f])) as Record<ProberType, DescField & { message?: DescMessage }>;

/** Each kind's field tag (field number, wire type 2) as written on the wire. */
const FIELD_TAGS = Object.fromEntries(Object.entries(POOL_FIELDS).map(([k, f]) => [k, new BinaryWriter().tag(f.number, WireType.LengthDelimited).finish()])) as Record<ProberType, Uint8Array>;

/** One target as its GetTargetPoolResponse field: tag, length, message. */
export function encodeField(type: ProberType, target: TargetOf<ProberType>): Uint8Array {
  const f = POOL_FIELDS[type];
  return new BinaryWriter().tag(f.number, WireType.LengthDelimited).bytes(toBinary(f.message!, target as never)).finish();
}

/** Every entry of a pool layout encoded (encodeField()), back to back, and where each one begins. */
export interface WireArena {
  bytes: Buffer;
  /** start[i] = offset of entry i in `bytes`; start[n] = bytes.length. */
  start: Int32Array;
  /** Each entry's kind (for the first field's tag). */
  types: ProberType[];
}

/** Lays encoded fields back to back (once per layout, not per answer). */
export function buildArena(fields: readonly Uint8Array[], types: ProberType[]): WireArena {
  const start = new Int32Array(fields.length + 1);
  for (let i = 0; i < fields.length; i++) start[i + 1] = start[i]! + fields[i]!.length;
  return { bytes: Buffer.concat(fields as Uint8Array[], start[fields.length]), start, types };
}

/**
 * The answer of arena entries `sel` (ascending indices): runs of consecutive entries are copied
 * with one native copy each, into one buffer, as one unknown field.
 */
export function answerFrom(arena: WireArena, sel: Int32Array): GetTargetPoolResponse {
  const out = create(GetTargetPoolResponseSchema, {});
  if (!sel.length) return out;
  const { bytes, start } = arena;
  const firstType = arena.types[sel[0]!]!;
  const skip = FIELD_TAGS[firstType].length;
  let size = -skip;
  for (let k = 0; k < sel.length; k++) size += start[sel[k]! + 1]! - start[sel[k]!]!;
  const data = Buffer.allocUnsafe(size);
  let pos = 0;
  for (let k = 0; k < sel.length; ) {
    // A run of consecutive entries: one copy.
    const from = sel[k]!;
    let to = from + 1;
    k++;
    while (k < sel.length && sel[k] === to) (to++, k++);
    const a = start[from]! + (pos === 0 ? skip : 0), b = start[to]!;
    // A native copy costs ~0.2 µs a call: short runs (one peer's target, ~40 bytes) go byte by byte.
    if (b - a > 256) pos += bytes.copy(data, pos, a, b);
    else for (let i = a; i < b; i++) data[pos++] = bytes[i]!;
  }
  out.$unknown = [{ no: POOL_FIELDS[firstType].number, wireType: WireType.LengthDelimited, data }];
  return out;
}
