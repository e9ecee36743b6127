/**
 * The agent's view of itself (AgentHealth, docs/protocol.md "Agent health"), sent with every push:
 *
 *   - the scheduler's late rounds (lib/agent/scheduler.ts takeHealth): regular rounds that came
 *     due, those that started late or not at all, and the largest lateness;
 *   - the loopback control: every probe interval a short ICMP echo round to the agent's own
 *     loopback address (127.0.0.1), with the agent's own ICMP prober and socket. Nothing of the
 *     network is on that path, so replies it loses were lost in the agent (a starved process, a
 *     full socket buffer, a host dropping packets), and the server's localiser reads the agent's
 *     loss as its own problem, not the network's. The round is no result: it only adds to
 *     loopback_sent / loopback_received.
 */
import { create } from "@bufbuild/protobuf";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import type { Logger } from "../log.ts";
import type { Prober } from "../probes/kind.ts";
import { IcmpModuleSchema, IcmpTargetSchema, type IcmpTarget } from "../rpc/gen/probermesh/v1/icmp_pb.ts";
import { AgentHealthSchema, type AgentHealth } from "../rpc/gen/probermesh/v1/probermesh_pb.ts";
import type { SchedulerHealth } from "./scheduler.ts";

/** The loopback control round: 10 echo requests 10 ms apart, each given 1 s, to 127.0.0.1. */
export const LOOPBACK_ROUND = { address: "127.0.0.1", count: 10, intervalMs: 10, timeoutMs: 1000 } as const;

/** Largest value of an AgentHealth count (uint32). */
const MAX_UINT32 = 0xffff_ffff;

/** Echo requests sent and replies received in time. */
export interface LoopbackCounts {
  sent: number;
  received: number;
}

/** Loopback control settings. */
export interface LoopbackOptions {
  /** The agent's ICMP prober (shared: the control runs on the sockets the probes use). */
  prober: Prober<"icmp">;
  /** One round per this many milliseconds (the probe interval). */
  intervalMs: number;
  log: Logger;
}

/**
 * Runs the loopback control round every interval (never two at once) and sums what it sent and
 * received until take(). When the prober cannot send ICMP it says so once and stays at 0 / 0.
 */
export class LoopbackControl {
  private sent = 0;
  private received = 0;
  private running = false;
  private timer: ReturnType<typeof setInterval> | undefined;
  private failureLogged = false;
  private readonly target: IcmpTarget;
  private readonly abort = new AbortController();

  constructor(private readonly o: LoopbackOptions) {
    this.target = create(IcmpTargetSchema, {
      targetRegion: "", address: LOOPBACK_ROUND.address,
      module: create(IcmpModuleSchema, { packetCount: LOOPBACK_ROUND.count, interval: durationFromMs(LOOPBACK_ROUND.intervalMs), timeout: durationFromMs(LOOPBACK_ROUND.timeoutMs) }),
    });
  }

  /** Starts the rounds (the first one interval from now). @returns false when ICMP is unavailable (logged once) */
  start(): boolean {
    const st = this.o.prober.status();
    if (!st.ready) {
      this.o.log.warn({ reason: st.message }, "loopback control off (ICMP unavailable): AgentHealth reports loopback 0/0");
      return false;
    }
    this.timer ??= setInterval(() => void this.round(), this.o.intervalMs);
    return true;
  }

  /** One control round now, unless one is running; resolves when it is summed. */
  async round(): Promise<void> {
    if (this.running) return;
    this.running = true;
    try {
      const r = await this.o.prober.probe(this.target, this.abort.signal);
      if (this.abort.signal.aborted) return;
      if (r.sent === 0 && r.error) {
        if (!this.failureLogged) this.o.log.warn({ err: r.error }, "loopback control round failed; AgentHealth reports what it could send (logged once)");
        this.failureLogged = true;
        return;
      }
      this.sent += r.sent;
      this.received += Math.min(r.received, r.sent);
    } finally {
      this.running = false;
    }
  }

  /** Echo requests sent and replies received since the previous call; resets them. */
  take(): LoopbackCounts {
    const c = { sent: this.sent, received: this.received };
    this.sent = this.received = 0;
    return c;
  }

  /** Stops the rounds (a round in flight is not counted). */
  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
    this.abort.abort();
  }
}

/** Merges the scheduler's late rounds and the loopback control into one AgentHealth per push. */
export class HealthMeter {
  /**
   * @param scheduler the agent's scheduler (its counts reset at every take)
   * @param loopback the loopback control; undefined when it is off (loopback 0 / 0)
   */
  constructor(
    private readonly scheduler: { takeHealth(): SchedulerHealth },
    private readonly loopback?: { take(): LoopbackCounts },
  ) {}

  /** The agent's health since the previous call (AgentHealth of the push being queued); resets the counts. */
  take(): AgentHealth {
    const s = this.scheduler.takeHealth();
    const l = this.loopback?.take() ?? { sent: 0, received: 0 };
    const u32 = (n: number) => Math.min(MAX_UINT32, Math.max(0, Math.round(n)));
    return create(AgentHealthSchema, {
      roundsDue: u32(s.roundsDue), roundsLate: u32(s.roundsLate), maxLatenessSeconds: s.maxLatenessSeconds,
      loopbackSent: u32(l.sent), loopbackReceived: u32(l.received),
    });
  }
}
