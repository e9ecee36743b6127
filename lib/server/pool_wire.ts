/**
 * Binary GetTargetPool answers from targets encoded once (lib/server/pool.ts poolWireFor()): each
 * target is kept as its GetTargetPoolResponse field (tag, length, message), and an answer is those
 * fields concatenated with one native copy, so thousands of targets are neither encoded nor
 * written one by one at every fetch.
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

/** Collects encoded fields (encodeField()) in order and makes the answer of them. */
export class WirePool {
  private readonly parts: Uint8Array[] = [];
  private size = 0;
  private first: ProberType | undefined;

  /** Adds one target's field, as encodeField() wrote it for kind `type`. */
  add(type: ProberType, field: Uint8Array): void {
    if (!this.first) {
      this.first = type;
      this.parts.push(field.subarray(FIELD_TAGS[type].length));
    } else this.parts.push(field);
    this.size += field.length;
  }

  /** The answer: every field added, in order, as one unknown field. */
  message(): GetTargetPoolResponse {
    const out = create(GetTargetPoolResponseSchema, {});
    if (!this.first) return out;
    // One native copy (a TypedArray.set per target costs more than the rest of the answer).
    const data = Buffer.concat(this.parts, this.size - FIELD_TAGS[this.first].length);
    out.$unknown = [{ no: POOL_FIELDS[this.first].number, wireType: WireType.LengthDelimited, data }];
    return out;
  }
}
