/**
 * One-way loss of the requests (UdpResult.forward_sent / forward_lost) from the responder's
 * reflector counts (packet.ts bytes 20..23, reflector.ts), as RFC 5357 (TWAMP)'s Session-Sender
 * compares its own sequence numbers with the Session-Reflector's.
 *
 * Per (flow port, responder) the prober keeps its next sequence and the (sequence, count) of the
 * newest reply. When a newer reply of the flow comes back:
 *
 *   span    = sequence - last sequence (mod 2^32)   requests sent since the last reply, this one included
 *   arrived = count - last count (mod 2^32)         of those, how many reached the responder
 *
 * and when 0 < span <= MAX_SPAN and 1 <= arrived <= span, the span counts: span requests sent,
 * span - arrived lost on the way there (whatever else the round lost, the replies lost it). The
 * reply is then the one remembered, so spans never overlap and may run across rounds.
 *
 * What does not count: the first reply of a flow (no span yet); replies with count 0 (a 0.6
 * responder, which writes "reserved, 0"); a reply older than the remembered one (reordered on the
 * way back: its requests are inside the span already counted); a span longer than MAX_SPAN (a long
 * silence: counting so far back would mix in other rounds' conditions) or one with more arrivals
 * than requests or none (the responder restarted or forgot the flow, so its count went down; or
 * requests were duplicated or reordered on the way there) - these reset: the reply becomes the
 * remembered one and counting starts again from it.
 */
import { randomBytes } from "node:crypto";
import { MAX_COUNT } from "./packet.ts";

/** Longest span counted, in requests (a default round sends 4 per flow; re-probing 4 a second). */
export const MAX_SPAN = 4096;

/** What one reply adds to a round's one-way counts. */
export interface OneWaySpan {
  /** Requests of the span (0: the reply counted nothing). */
  sent: number;
  /** Of those, the requests that never reached the responder. */
  lost: number;
}

const NONE: OneWaySpan = Object.freeze({ sent: 0, lost: 0 });

/** One flow's sequence and its newest reply, shared by every round of the flow. */
export class FlowSequence {
  /** The next request's sequence (random start, wraps at 2^32). */
  private next: number;
  /** Sequence and reflector count of the newest counted reply; lastCount 0: none yet. */
  private lastSeq = 0;
  private lastCount = 0;

  /** @param start the first sequence (default random) */
  constructor(start = randomBytes(4).readUInt32BE()) {
    this.next = start >>> 0;
  }

  /** The sequence of the next request; every call takes a new one. */
  take(): number {
    const s = this.next;
    this.next = (s + 1) >>> 0;
    return s;
  }

  /**
   * Folds in a verified reply to the request of `sequence` carrying reflector count `count`.
   * @returns the span it closes (sent and lost on the way there), or 0 / 0
   */
  reply(sequence: number, count: number): OneWaySpan {
    if (count === 0) return NONE;
    if (this.lastCount === 0) return this.remember(sequence, count);
    const span = (sequence - this.lastSeq) >>> 0;
    // Not newer than the remembered reply (a duplicate, or reordered on the way back): nothing.
    if (span === 0 || span >= 0x80000000) return NONE;
    // Counts run 1..MAX_COUNT: a step across the wrap is one less than the modular difference.
    const arrived = count >= this.lastCount ? count - this.lastCount : (count - this.lastCount - 1) >>> 0;
    this.remember(sequence, count);
    if (span > MAX_SPAN || arrived === 0 || arrived > span) return NONE;
    return { sent: span, lost: span - arrived };
  }

  private remember(sequence: number, count: number): OneWaySpan {
    this.lastSeq = sequence >>> 0;
    this.lastCount = Math.min(count, MAX_COUNT);
    return NONE;
  }
}
