/**
 * The FFI pointers stored inside C structs (msghdr name/iov/control) must stay valid for the
 * socket's life. 0.4.0 took them from small typed arrays and later called subarray() on one of
 * them, which moves a small array's bytes: the kernel then wrote into freed memory and the agent
 * aborted inside Bun (seen in CI after a few path traces).
 */
import { describe, expect, test } from "bun:test";
import { ptr } from "bun:ffi";
import { addressOf } from "../lib/probes/icmp/libc.ts";

describe("addressOf", () => {
  test("a pointer taken from a small typed array survives subarray(), DataView and a full GC", () => {
    for (const make of [() => new Uint8Array(32), () => new BigUint64Array(2), () => new Int32Array(8), () => new Uint8Array(4096)]) {
      const a = make();
      const p = addressOf(a);
      a.subarray(1, 2);
      new DataView(a.buffer);
      Bun.gc(true);
      expect(Number(ptr(a))).toBe(p);
    }
  });
});
