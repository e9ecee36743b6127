/**
 * Where the ICMP engine, the path tracer and their sockets read time.
 *
 * Every duration they measure (RTT, per-packet timeout, request spacing) is a difference of
 * CLOCK_MONOTONIC readings, which a wall-clock step (NTP step, `date -s`, a VM resumed) never
 * moves. CLOCK_REALTIME is read for one purpose: the kernel stamps received packets with it
 * (SO_TIMESTAMPNS), so a stamp is turned into monotonic time through "how long ago, by the wall
 * clock" and used only when that age is plausible (IcmpSocket, socket.ts).
 *
 * Readings are nanoseconds as JS numbers, relative to origins fixed when the clock is created, so
 * they stay exact to the nanosecond for 104 days (2^53 ns) and to a few ns after that. The
 * monotonic origin is placed so that both clocks read the same at creation: `realtimeOriginSec +
 * monotonicNs() / 1e9` is the wall time as it would be had the wall clock not stepped since.
 * Injectable: tests step a wall clock in the middle of a round through their own Clock.
 */
import { CLOCK_MONOTONIC, CLOCK_REALTIME, libc } from "./libc.ts";

/** The two clocks of a socket; nanoseconds relative to fixed origins. */
export interface Clock {
  /**
   * CLOCK_MONOTONIC in nanoseconds: never steps. Reads like realtimeNs() at the clock's creation,
   * so `realtimeOriginSec + monotonicNs() / 1e9` approximates unix time (off by the sum of the
   * wall-clock steps since creation).
   */
  monotonicNs(): number;
  /** CLOCK_REALTIME in nanoseconds since `realtimeOriginSec` (may step, either way). */
  realtimeNs(): number;
  /** The unix second realtimeNs() counts from; kernel timestamps (unix seconds + ns) are taken relative to it. */
  readonly realtimeOriginSec: number;
}

/** The system's clocks through clock_gettime(2) (vDSO: no system call). */
export class SystemClock implements Clock {
  readonly realtimeOriginSec: number;
  private readonly monotonicOriginSec: number;
  /** Added to monotonic readings so that they start equal to realtimeNs(), ns (−1e9..1e9). */
  private readonly monotonicShiftNs: number;
  private readonly ts = new Uint32Array(4);

  constructor() {
    this.realtimeOriginSec = this.seconds(CLOCK_REALTIME);
    const realNs = this.ts[2]!;
    this.monotonicOriginSec = this.seconds(CLOCK_MONOTONIC);
    this.monotonicShiftNs = realNs - this.ts[2]!;
  }

  monotonicNs(): number {
    const s = this.seconds(CLOCK_MONOTONIC);
    return (s - this.monotonicOriginSec) * 1e9 + this.ts[2]! + this.monotonicShiftNs;
  }

  realtimeNs(): number {
    const s = this.seconds(CLOCK_REALTIME);
    return (s - this.realtimeOriginSec) * 1e9 + this.ts[2]!;
  }

  /** Reads `clock` into ts (struct timespec: 64-bit seconds, then nanoseconds) and returns its seconds. */
  private seconds(clock: number): number {
    libc.clock_gettime(clock, this.ts);
    return this.ts[0]! + this.ts[1]! * 4294967296;
  }
}

/** The process's system clock, shared by every engine, tracer and socket that is given no other. */
export const SYSTEM_CLOCK: Clock = new SystemClock();
