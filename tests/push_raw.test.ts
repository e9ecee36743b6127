/**
 * lib/server/push_raw.ts: the PushResults schema with results left encoded is derived from the
 * generated one. Every field keeps its number; a push of every kind read with it gives, per
 * result, bytes that decode to that very result; every other field reads the same.
 */
import { describe, expect, test } from "bun:test";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { PROBER_TYPES, type ProberType } from "../lib/probes/kind.ts";
import { PROBE_KINDS } from "../lib/probes/kinds.ts";
import { PushResultsRequestSchema } from "../lib/rpc/gen/probermesh/v1/probermesh_pb.ts";
import { RAW_PUSH_SCHEMA, resultAt, type PushIn } from "../lib/server/push_raw.ts";

describe("PushResults with results left encoded", () => {
  test("the same fields and numbers as PushResultsRequest; result lists are bytes, the rest unchanged", () => {
    const raw = Object.fromEntries(RAW_PUSH_SCHEMA.fields.map((f) => [f.localName, f]));
    expect(Object.keys(raw).sort()).toEqual(PushResultsRequestSchema.fields.map((f) => f.localName).sort());
    for (const f of PushResultsRequestSchema.fields) {
      const r = raw[f.localName]!;
      expect({ field: f.localName, no: r.number, kind: r.fieldKind }).toEqual({ field: f.localName, no: f.number, kind: f.fieldKind });
      const isResult = (PROBER_TYPES as readonly string[]).includes(f.localName);
      expect({ field: f.localName, scalarBytes: r.fieldKind === "list" && r.listKind === "scalar" }).toEqual({ field: f.localName, scalarBytes: isResult });
    }
  });
  test("every kind's results come back as their own bytes, decoded by resultAt to the same message; the rest of the push reads the same", () => {
    const req = create(PushResultsRequestSchema, {
      agent: { region: "a", ip: "127.0.0.1", version: "1", udpPort: 7 }, sentTime: timestampFromMs(1_700_000_000_123), agentInstanceId: "i-1", batchSequence: 9n, droppedPoints: 3n,
      traces: [{ targetRegion: "b", address: "127.0.0.2", hops: [{ ttl: 1, address: "127.0.0.3", sent: 2, received: 1 }] }],
      health: { roundsDue: 5, roundsLate: 1 },
    });
    for (const [n, type] of PROBER_TYPES.entries()) {
      const schema = PROBE_KINDS[type].resultSchema;
      (req[type] as unknown[]).push(...Array.from({ length: n + 1 }, (_, i) => create(schema as never, { targetRegion: `r${i}` } as never)));
    }
    const raw = fromBinary(RAW_PUSH_SCHEMA, toBinary(PushResultsRequestSchema, req)) as unknown as PushIn;
    for (const type of PROBER_TYPES) {
      const list = raw[type] as unknown[];
      expect(list.length).toBe(req[type].length);
      for (let i = 0; i < list.length; i++) {
        expect(list[i]).toBeInstanceOf(Uint8Array);
        expect(resultAt(type as ProberType, list as never, i)).toEqual(req[type][i] as never);
      }
    }
    const { $typeName: _a, ...rest } = raw as unknown as Record<string, unknown>;
    const { $typeName: _b, ...want } = req as unknown as Record<string, unknown>;
    for (const k of Object.keys(want)) if (!(PROBER_TYPES as readonly string[]).includes(k)) expect({ k, v: rest[k] }).toEqual({ k, v: want[k] });
  });
  test("resultAt: bytes that are not a valid result give undefined; a decoded result (a JSON push) is returned as is", () => {
    expect(resultAt("icmp", [Uint8Array.of(0x0a, 0x05, 0x41)], 0)).toBeUndefined();
    const r = create(PROBE_KINDS.icmp.resultSchema, { targetRegion: "x" });
    expect(resultAt("icmp", [r], 0)).toBe(r);
  });
});
