/** A finished echo round's outcome (engine.ts) and the engine's demultiplexing keys. */
import type { EchoOutcome, Round } from "./engine_types.ts";

/** The outcome's hidden link to its round's timing buffer (for IcmpEngine.release()). */
export const TIMES = Symbol("times");
export type Released = EchoOutcome & { [TIMES]?: Float64Array };

/**
 * A finished round's EchoOutcome. The RTT arrays are getters on the prototype, built on demand
 * (tests, fixtures): an agent at 10,000 targets reads `rttNs` only, and per-round closures were
 * garbage 10,000 times an interval.
 */
export class RoundOutcome implements EchoOutcome {
  readonly sent: number;
  readonly received: number;
  readonly duplicates: number;
  readonly corrupted: number;
  readonly rttNs: Float64Array;
  readonly firstSequence: number;
  readonly error: string;
  /** The round's timing buffer until release() takes it back. */
  [TIMES]?: Float64Array;

  constructor(r: Round) {
    this.sent = r.sent;
    this.received = r.received;
    this.duplicates = r.duplicates;
    this.corrupted = r.corrupted;
    this.rttNs = r.rttNs.subarray(0, r.sent);
    this.firstSequence = r.seqBase;
    this.error = r.error;
    this[TIMES] = r.times;
  }

  get rttsSeconds(): number[] {
    const out: number[] = [];
    for (const v of this.rttNs) if (!Number.isNaN(v)) out.push(v / 1e9);
    return out;
  }

  get requestRttsSeconds(): number[] {
    return Array.from(this.rttNs, (v) => v / 1e9);
  }

  /** JSON form (fixtures print outcomes): the fields and both RTT arrays, seconds; rttNs as an array. */
  toJSON(): Omit<EchoOutcome, "rttNs"> & { rttNs: number[] } {
    const { sent, received, duplicates, corrupted, firstSequence, error } = this;
    return { sent, received, duplicates, corrupted, firstSequence, error, rttNs: Array.from(this.rttNs), rttsSeconds: this.rttsSeconds, requestRttsSeconds: this.requestRttsSeconds };
  }
}

/** 4 bytes of `b` from `off` as an unsigned big-endian number (the IPv4 demux key). */
export function u32(b: Uint8Array, off: number): number {
  return ((b[off]! << 24) | (b[off + 1]! << 16) | (b[off + 2]! << 8) | b[off + 3]!) >>> 0;
}

/** Hex text of `len` bytes of `b` from `off` (the IPv6 demux key). */
export function hex(b: Uint8Array, off: number, len: number): string {
  let s = "";
  for (let i = off; i < off + len; i++) s += (b[i]! < 16 ? "0" : "") + b[i]!.toString(16);
  return s;
}
