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

/**
 * How much older than "queue last seen empty" a kernel receive stamp may be and still be used, ns.
 * The kernel stamps a packet as it enters the stack, a little before it is queued on the socket,
 * and "seen empty" is read just after the recvmmsg() that saw it: microseconds each, more under
 * load. A wall-clock step smaller than this can shift one RTT by at most its size; a larger one
 * is caught.
 */
export const RX_STAMP_SLACK_NS = 1_000_000;

/**
 * The monotonic receive time of a packet whose kernel stamp (SO_TIMESTAMPNS) reads `stampNs`
 * (wall clock, ns relative to the clock's realtimeOriginSec; NaN: no stamp), read when the wall
 * clock said `realNow` and the monotonic one `monoNow`, from a queue last seen empty at
 * `emptyAtNs` (monotonic): monoNow − (realNow − stampNs) when that age is plausible (not negative,
 * not older than the queue's last empty moment plus RX_STAMP_SLACK_NS), else NaN (a wall-clock
 * step between arrival and read, or no stamp): the caller then uses its read time and counts it.
 * One rule for every socket that times packets (ICMP, UDP, the flow tracer's raw sockets).
 */
export function stampToMonotonic(stampNs: number, realNow: number, monoNow: number, emptyAtNs: number): number {
  const age = realNow - stampNs;
  return age >= 0 && age <= monoNow - emptyAtNs + RX_STAMP_SLACK_NS ? monoNow - age : NaN;
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
