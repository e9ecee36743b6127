/**
 * Binary GetTargetPool answers from targets encoded once (lib/server/pool.ts poolWireFor()): each
 * target is kept as its GetTargetPoolResponse field (tag, length, message), every target of a
 * pool layout lies back to back in one arena, and an answer copies the runs of consecutive
 * targets it holds (a whole region's segment is one run, in the full mesh every region before
 * and after the agent's own), so thousands of targets are neither encoded nor written one by one
 * at every fetch.
 *
 * The bytes travel as one unknown field (`$unknown`, written as-is by toBinary): toBinary writes
 * that field's tag, so its data is the first target's length and message followed by every other
 * target's whole field. A protobuf message is the concatenation of its fields (protobuf encoding,
 * "Message Structure"), so the answer decodes to the same targets as a message holding them
 * (byte for byte toBinary's for one kind; with several, the layout's kind order may differ from
 * field-number order, which a parser accepts: "Field Order"). Only for binary (protobuf)
 * answers: JSON leaves unknown fields out.
 */
import { create, toBinary, type DescField, type DescMessage } from "@bufbuild/protobuf";
import { BinaryReader, BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
import { GetTargetPoolResponseSchema, type GetTargetPoolResponse } from "../rpc/gen/probermesh/v1/probermesh_pb.ts";
import type { ProberType, TargetOf } from "../probes/kind.ts";

/** GetTargetPoolResponse's list field of each kind (its number and target message). */
const POOL_FIELDS = Object.fromEntries(GetTargetPoolResponseSchema.fields.map((f) => [f.localName, f])) as Record<ProberType, DescField & { message?: DescMessage }>;


/** One target as its GetTargetPoolResponse field: tag, length, message. */
export function encodeField(type: ProberType, target: TargetOf<ProberType>): Uint8Array {
  const f = POOL_FIELDS[type];
  return new BinaryWriter().tag(f.number, WireType.LengthDelimited).bytes(toBinary(f.message!, target as never)).finish();
}

/** Targets encoded (encodeField()), back to back, and where each one begins. */
export interface EncodedRun {
  bytes: Buffer;
  /** start[i] = offset of entry i in `bytes`; start[n] = bytes.length. */
  start: Int32Array;
}

/** Every entry of a pool layout encoded, back to back. */
export type WireArena = EncodedRun;

/** One segment's targets (all of kind `type`) encoded, once per segment (kept until its region changes). */
export function segmentWire(type: ProberType, targets: readonly { target: TargetOf<ProberType> }[]): EncodedRun {
  const fields = targets.map((e) => encodeField(type, e.target));
  const start = new Int32Array(fields.length + 1);
  for (let i = 0; i < fields.length; i++) start[i + 1] = start[i]! + fields[i]!.length;
  return { bytes: Buffer.concat(fields, start[fields.length]), start };
}

/**
 * A layout's arena from its segments' encodings in pool order (one copy per segment, not per
 * target: a join rebuilds the layout); `size` = entries in all.
 */
export function buildArena(segments: readonly EncodedRun[], size: number): WireArena {
  const start = new Int32Array(size + 1);
  let n = 0, base = 0;
  for (const s of segments) {
    const k = s.start.length - 1;
    for (let i = 1; i <= k; i++) start[n + i] = base + s.start[i]!;
    n += k;
    base += s.bytes.length;
  }
  return { bytes: Buffer.concat(segments.map((s) => s.bytes), base), start };
}

/**
 * The answer of arena entries in `runs`: half-open index ranges [from, to) as pairs
 * (from0, to0, from1, to1, ...), ascending and not overlapping. Each run is copied with one
 * native copy, into one buffer, as one unknown field, whose number is the first entry's field
 * tag, read from the arena (its bytes are left out: toBinary writes the tag).
 */
export function answerFrom(arena: WireArena, runs: Int32Array): GetTargetPoolResponse {
  const out = create(GetTargetPoolResponseSchema, {});
  if (!runs.length) return out;
  const { bytes, start } = arena;
  const head = new BinaryReader(bytes.subarray(start[runs[0]!]!, start[runs[0]! + 1]!));
  const [no] = head.tag();
  const skip = head.pos;
  let size = -skip;
  for (let k = 0; k < runs.length; k += 2) size += start[runs[k + 1]!]! - start[runs[k]!]!;
  const data = Buffer.allocUnsafe(size);
  let pos = 0;
  for (let k = 0; k < runs.length; k += 2) {
    const a = start[runs[k]!]! + (pos === 0 ? skip : 0), b = start[runs[k + 1]!]!;
    // A native copy costs ~0.2 µs a call: short runs (one peer's target, ~40 bytes) go byte by byte.
    if (b - a > 256) pos += bytes.copy(data, pos, a, b);
    else for (let i = a; i < b; i++) data[pos++] = bytes[i]!;
  }
  out.$unknown = [{ no, wireType: WireType.LengthDelimited, data }];
  return out;
}

/**
 * Ascending entry indices as runs (answerFrom()): consecutive indices become one [from, to) pair.
 * Duplicates and indices in `drop` are left out.
 */
export function runsOf(sorted: Int32Array, drop?: ReadonlySet<number>): Int32Array {
  const runs = new Int32Array(sorted.length * 2);
  let n = 0;
  for (let k = 0; k < sorted.length; k++) {
    const g = sorted[k]!;
    if (drop?.has(g) || (n > 0 && g < runs[n - 1]!)) continue;
    if (n > 0 && runs[n - 1] === g) runs[n - 1] = g + 1;
    else (runs[n++] = g, runs[n++] = g + 1);
  }
  return runs.subarray(0, n);
}

/**
 * Runs (answerFrom()) with the indices in `drop` (ascending) taken out: each dropped index inside
 * a run splits it.
 */
export function subtractFromRuns(runs: readonly number[], drop: readonly number[]): Int32Array {
  const out: number[] = [];
  let d = 0;
  for (let k = 0; k < runs.length; k += 2) {
    let from = runs[k]!;
    const to = runs[k + 1]!;
    while (d < drop.length && drop[d]! < from) d++;
    for (; d < drop.length && drop[d]! < to; d++) {
      if (drop[d]! > from) out.push(from, drop[d]!);
      from = drop[d]! + 1;
    }
    if (from < to) out.push(from, to);
  }
  return Int32Array.from(out);
}
