/**
 * lib/server/pool_wire.ts and pool_layout.ts: a pool answer's entries as runs of arena indices,
 * found per segment. The run helpers are
 * checked against the plain list of indices they stand for, over many random selections, and an
 * answer copied from runs against toBinary of the same targets as a message.
 */
import { describe, expect, test } from "bun:test";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { GetTargetPoolResponseSchema } from "../lib/rpc/gen/probermesh/v1/probermesh_pb.ts";
import { PROBE_KINDS } from "../lib/probes/kinds.ts";
import type { ProberType, TargetOf } from "../lib/probes/kind.ts";
import { answerFrom, buildArena, runsOf, segmentWire, subtractFromRuns } from "../lib/server/pool_wire.ts";
import { assembleLayout, forEachEntry, newSegment } from "../lib/server/pool_layout.ts";

/** The indices runs stand for. */
const expand = (runs: ArrayLike<number>) => {
  const out: number[] = [];
  for (let k = 0; k < runs.length; k += 2) for (let g = runs[k]!; g < runs[k + 1]!; g++) out.push(g);
  return out;
};

/** A small deterministic generator (the failing seed is in the test name). */
const rng = (seed: number) => () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32);

describe("runs of arena indices", () => {
  test("runsOf: sorted indices with duplicates and drops become maximal runs of the rest", () => {
    for (let seed = 1; seed <= 300; seed++) {
      const r = rng(seed);
      const idx = Array.from({ length: Math.floor(r() * 60) }, () => Math.floor(r() * 80)).sort((a, b) => a - b);
      const drop = new Set(Array.from({ length: Math.floor(r() * 5) }, () => Math.floor(r() * 80)));
      const runs = runsOf(Int32Array.from(idx), drop);
      const want = [...new Set(idx)].filter((g) => !drop.has(g));
      expect({ seed, got: expand(runs) }).toEqual({ seed, got: want });
      // Maximal: no run ends where the next begins.
      for (let k = 2; k < runs.length; k += 2) expect(runs[k]! > runs[k - 1]!).toBe(true);
    }
  });
  test("subtractFromRuns: dropped indices split runs, those outside every run change nothing", () => {
    for (let seed = 1; seed <= 300; seed++) {
      const r = rng(seed);
      const runs: number[] = [];
      for (let at = 0, k = Math.floor(r() * 6); k > 0; k--) {
        const from = at + Math.floor(r() * 4), to = from + 1 + Math.floor(r() * 10);
        runs.push(from, to);
        at = to + 1;
      }
      const drop = [...new Set(Array.from({ length: Math.floor(r() * 8) }, () => Math.floor(r() * 60)))].sort((a, b) => a - b);
      const got = subtractFromRuns(runs, drop);
      expect({ seed, got: expand(got) }).toEqual({ seed, got: expand(runs).filter((g) => !drop.includes(g)) });
      for (let k = 0; k < got.length; k += 2) expect(got[k]! < got[k + 1]!).toBe(true);
    }
  });
  test("an answer copied from runs decodes to the same targets as a message, and one kind's is byte for byte toBinary's", () => {
    const types: ProberType[] = [], targets: TargetOf<ProberType>[] = [];
    // Three segments, one per kind, as a layout's are (toBinary writes fields in field-number order).
    const segments = (["icmp", "udp", "tcp"] as const).map((type, s) => {
      const kind = PROBE_KINDS[type];
      const seg = Array.from({ length: s === 0 ? 14 : 13 }, (_, i) => kind.target(`r${i % 7}`, type === "icmp" ? `127.0.3.${i}` : `127.0.3.${i}:${7000 + i}`, kind.defaultModule() as never) as TargetOf<ProberType>);
      for (const t of seg) types.push(type), targets.push(t);
      return segmentWire(type, seg.map((target) => ({ target })));
    });
    const arena = buildArena(segments, types.length);
    expect(arena.start[40]).toBe(arena.bytes.length);
    for (const runs of [[0, 40], [1, 2, 5, 9, 30, 40], [39, 40], [2, 3, 4, 5], [0, 14], [3, 9]]) {
      const msg = create(GetTargetPoolResponseSchema, {});
      for (const g of expand(runs)) (msg[types[g]!] as TargetOf<ProberType>[]).push(targets[g]!);
      const wire = toBinary(GetTargetPoolResponseSchema, answerFrom(arena, Int32Array.from(runs)));
      expect(fromBinary(GetTargetPoolResponseSchema, wire)).toEqual(msg);
      // One kind: the same bytes (with several, the layout's kind order may differ from field-number order).
      if (runs.length === 2 && runs[1]! <= 14) expect(Buffer.from(wire)).toEqual(Buffer.from(toBinary(GetTargetPoolResponseSchema, msg)));
    }
  });
});

describe("a layout's entries, found per segment", () => {
  test("forEachEntry agrees with the entries laid end to end, empty segments anywhere", () => {
    for (let seed = 1; seed <= 100; seed++) {
      const r = rng(seed);
      const flat: { type: ProberType; address: string }[] = [];
      const items = Array.from({ length: 1 + Math.floor(r() * 12) }, (_, s) => {
        const type = (["icmp", "udp", "tcp"] as const)[s % 3]!;
        const entries = Array.from({ length: r() < 0.3 ? 0 : 1 + Math.floor(r() * 5) }, (_, j) => ({ target: { targetRegion: `r${s}` } as TargetOf<ProberType>, host: `127.0.${s}.${j}` }));
        for (const e of entries) flat.push({ type, address: e.host });
        return { type, region: `r${s}`, seg: newSegment(entries), first: -1 };
      });
      const layout = assembleLayout(items);
      expect(layout.size).toBe(flat.length);
      const all: { type: ProberType; address: string }[] = [];
      forEachEntry(layout, Int32Array.of(0, layout.size), (type, e) => all.push({ type, address: e.host }));
      expect({ seed, all }).toEqual({ seed, all: flat });
      const picked = Array.from({ length: flat.length }, (_, g) => g).filter(() => r() < 0.5);
      const seen: { type: ProberType; address: string }[] = [];
      forEachEntry(layout, runsOf(Int32Array.from(picked)), (type, e) => seen.push({ type, address: e.host }));
      expect({ seed, seen }).toEqual({ seed, seen: picked.map((g) => flat[g]!) });
    }
  });
});
