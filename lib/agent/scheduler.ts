/**
 * Per-target probe scheduling: one round per target per probe interval, each target at its own
 * fixed offset inside the interval, aligned to the epoch. The offset is a hash (SHA-256) of the
 * agent's identity and the target's key, so an agent's rounds are spread over the interval, and
 * the agents of a mesh start their rounds to one target at different times, like Pingmesh's
 * per-source randomisation: a key-only offset made N agents send their 64-echo bursts to one
 * target in the same millisecond (router ICMP policers then drop them: correlated false loss).
 * The identity is stable across restarts (the agent passes `${region}/${ip}`), so each agent's
 * schedule stays regular: one round per interval at a fixed offset, before and after a restart.
 *
 * Adaptive re-probing (ping-agent's error list; docs/probes.md "Error state"): a job that can be
 * re-probed (`errorCost`) and whose round reports an error enters error state; it is then probed
 * again every error interval, on top of its regular rounds, until a whole clear period passes
 * without an error. Rounds of one target never overlap. The extra rounds draw on a token bucket
 * of packets per second (the budget), so a region-wide outage does not multiply the load without
 * bound: a re-probe that finds the bucket empty is skipped and tried again one error interval later.
 *
 * Health (AgentHealth, docs/protocol.md "Agent health"): every regular round that comes due and
 * starts is counted, and counted late when it started more than max(100 ms, 10 % of the probe
 * interval) after its planned monotonic time. A round that does not start because the target's
 * previous round (or an error-state re-probe) still runs is not counted: that is a lossy target
 * (a round waits out its timeout), not a starved agent. A starved agent (no CPU, a paused VM)
 * shows here before it shows as network loss.
 */
import { createHash } from "node:crypto";

/** What a round is told about itself. */
export interface RoundContext {
  /**
   * The planned start of this regular round, unix milliseconds (interval start + the job's
   * offset; consecutive regular rounds are exactly one probe interval apart). Undefined for a
   * re-probe of a target in error state.
   */
  plannedMs?: number;
  /** True while the target is in error state (regular rounds included). */
  errorState: boolean;
  /**
   * Milliseconds since this target's previous round started, at most the probe interval (a round
   * never stands for more than one regular interval; the probe interval for the first round).
   */
  sinceLastMs: number;
}

/** What a round reports back. */
export interface RoundReport {
  /** The round lost packets or failed. */
  error: boolean;
  /** Details for the state-change log line (loss, error text). */
  detail?: Record<string, unknown>;
}

/** A scheduled job: a key, a fingerprint of its settings, and the work of one round. */
export interface Job {
  key: string;
  /** When the fingerprint changes the job is restarted with the new settings. */
  fingerprint: string;
  run(ctx: RoundContext): Promise<RoundReport | void>;
  /** Packets one re-probe costs; absent: the job is never re-probed (no error state). */
  errorCost?: number;
}

/** Adaptive re-probing settings; durations in milliseconds. */
export interface ErrorPolicy {
  /** Start-to-start spacing of re-probes of a target in error state (-agent.probe.error.interval). */
  intervalMs: number;
  /** Error-free time that ends error state (-agent.probe.error.clear). */
  clearMs: number;
  /** Extra packets per second all re-probes together may send (-agent.probe.error.budget); 0 disables re-probing. */
  budgetPps: number;
}

/** Error-state changes and budget pressure, for the agent's log and its traces. */
export interface SchedulerEvents<J extends Job = Job> {
  onError?(key: string, e: unknown): void;
  /** A job entered (true) or left (false) error state. `forMs`: how long it was in error state. */
  onErrorState?(job: J, entered: boolean, info: { report?: RoundReport; forMs?: number; reprobes?: number }): void;
  /** Re-probes skipped because the budget was empty since the last call (at most once per budget log interval). */
  onBudgetExhausted?(skipped: number, inErrorState: number): void;
}

/** How the regular rounds that came due since the last takeHealth() ran (AgentHealth's first fields). */
export interface SchedulerHealth {
  /** Regular rounds that came due. */
  roundsDue: number;
  /** Of them: started more than the lateness threshold after their planned time. */
  roundsLate: number;
  /** The largest lateness of a round that started, seconds (0 when none was late at all). */
  maxLatenessSeconds: number;
}

/** Lateness a round may have and still count as on time, milliseconds: max(100 ms, 10 % of the probe interval). */
export function lateThresholdMs(intervalMs: number): number {
  return Math.max(100, intervalMs / 10);
}

/** How often a budget shortage is logged at most, ms. */
const BUDGET_LOG_MS = 60_000;

interface State<J extends Job> {
  job: J;
  timer: ReturnType<typeof setTimeout>;
  running: boolean;
  /** Monotonic ms of the last round's start (-Infinity before the first). */
  lastStartMs: number;
  /** Set while in error state; times are monotonic ms. */
  error?: { sinceMs: number; lastBadMs: number; reprobes: number; timer?: ReturnType<typeof setTimeout> };
}

/**
 * A uniform fraction in [0, 1) from a string: the first 48 bits of its SHA-256. Well mixed for
 * near-identical strings (FNV-1a's high bits are not), and the same in every runtime and release,
 * so an agent's offsets survive upgrades.
 */
function hashFraction(s: string): number {
  return createHash("sha256").update(s).digest().readUIntBE(0, 6) / 2 ** 48;
}

/**
 * The scheduler's two clocks, milliseconds. The wall clock only places a job's first round (rounds
 * are aligned to the epoch, so an agent's schedule is the same after a restart); every interval,
 * spacing and elapsed time is monotonic, so a wall-clock step (NTP, a VM resumed) neither stalls a
 * target for an hour nor fires its rounds back to back, nor makes a round's weight negative.
 */
export interface SchedulerClock {
  /** Unix time, milliseconds (Date.now). */
  wallMs(): number;
  /** Monotonic time, milliseconds (performance.now: the clock setTimeout runs on). */
  monoMs(): number;
}

/** The process's clocks. */
export const SYSTEM_SCHEDULER_CLOCK: SchedulerClock = { wallMs: () => Date.now(), monoMs: () => performance.now() };

/** Keeps one timer per job; sync() starts new jobs, restarts changed ones and stops removed ones. */
export class Scheduler<J extends Job = Job> {
  private readonly jobs = new Map<string, State<J>>();
  private tokens: number;
  private tokensAtMs: number;
  private skipped = 0;
  private lastBudgetLogMs = -Infinity;
  private inError = 0;
  private roundsDue = 0;
  private roundsLate = 0;
  /** Largest lateness of a started round since the last takeHealth(), ms. */
  private maxLateMs = 0;
  private readonly lateMs: number;

  /**
   * @param intervalMs probe interval, milliseconds
   * @param policy adaptive re-probing; undefined: none
   * @param identity this agent, stable across restarts (the agent passes `${region}/${ip}`): with
   *   the job key it picks each job's offset, so agents probe one target at different times
   */
  constructor(
    private readonly intervalMs: number,
    private readonly events: SchedulerEvents<J> = {},
    private readonly policy?: ErrorPolicy,
    private readonly identity = "",
    private readonly clock: SchedulerClock = SYSTEM_SCHEDULER_CLOCK,
  ) {
    this.tokens = policy?.budgetPps ?? 0;
    this.tokensAtMs = clock.monoMs();
    this.lateMs = lateThresholdMs(intervalMs);
  }

  /** The health of the regular rounds since the previous call (or start); resets the counts. */
  takeHealth(): SchedulerHealth {
    const h = { roundsDue: this.roundsDue, roundsLate: this.roundsLate, maxLatenessSeconds: this.maxLateMs / 1000 };
    this.roundsDue = this.roundsLate = this.maxLateMs = 0;
    return h;
  }

  /**
   * Offset of a job's rounds inside the interval for this scheduler's identity: a whole number of
   * milliseconds in [0, intervalMs), from a hash of identity and key (computed once per job start).
   */
  offsetOf(key: string): number {
    return Math.floor(hashFraction(`${this.identity}\n${key}`) * this.intervalMs);
  }

  /**
   * Makes the running set equal to `jobs`; with `keepMissing`, jobs absent from `jobs` keep
   * running (a partial pool: only additions and changes apply).
   */
  sync(jobs: J[], keepMissing = false): { started: number; stopped: number } {
    const want = new Map(jobs.map((j) => [j.key, j]));
    let started = 0, stopped = 0;
    for (const [key, s] of this.jobs) {
      const w = want.get(key);
      if ((!w && !keepMissing) || (w && w.fingerprint !== s.job.fingerprint)) {
        this.drop(s);
        this.jobs.delete(key);
        stopped++;
      }
    }
    for (const j of jobs) {
      if (this.jobs.has(j.key)) continue;
      this.start(j);
      started++;
    }
    return { started, stopped };
  }

  /** Number of scheduled jobs. */
  get size(): number {
    return this.jobs.size;
  }

  /** Jobs in error state now. */
  get errorStateCount(): number {
    return this.inError;
  }

  /** Stops every job. */
  stop(): void {
    for (const s of this.jobs.values()) this.drop(s);
    this.jobs.clear();
  }

  private drop(s: State<J>): void {
    clearTimeout(s.timer);
    if (s.error) {
      clearTimeout(s.error.timer);
      this.inError--;
    }
    s.error = undefined;
  }

  private start(job: J): void {
    // The first round is placed on the wall clock (epoch-aligned), the rest run on the monotonic one.
    const wall = this.clock.wallMs();
    const mono = this.clock.monoMs();
    const offset = this.offsetOf(job.key);
    let firstWall = Math.floor(wall / this.intervalMs) * this.intervalMs + offset;
    if (firstWall <= wall) firstWall += this.intervalMs;
    let next = mono + (firstWall - wall); // monotonic ms of the next regular round
    let planned = firstWall; // its planned start in unix ms, advanced by whole intervals
    const state: State<J> = { job, timer: undefined as unknown as ReturnType<typeof setTimeout>, running: false, lastStartMs: -Infinity };
    const fire = () => {
      if (this.jobs.get(job.key) !== state) return;
      const thisPlanned = planned;
      const dueMono = next;
      next += this.intervalMs;
      planned += this.intervalMs;
      const now = this.clock.monoMs();
      state.timer = setTimeout(fire, Math.max(0, next - now));
      // Skipped when the previous round is still going (never overlap): not counted (a lossy
      // target's rounds run to their timeout, and its re-probes run between them).
      if (this.runRound(state, thisPlanned)) this.countDue(now - dueMono);
    };
    state.timer = setTimeout(fire, next - mono);
    this.jobs.set(job.key, state);
  }

  /** Counts a regular round that came due and started. @param lateMs how long after its planned monotonic time it fired */
  private countDue(lateMs: number): void {
    this.roundsDue++;
    if (lateMs > this.lateMs) this.roundsLate++;
    if (lateMs > this.maxLateMs) this.maxLateMs = lateMs;
  }

  /**
   * Runs one round unless one is running; then updates error state. @param plannedMs the regular
   * round's planned start (unix ms), undefined for a re-probe @returns false when skipped
   */
  private runRound(s: State<J>, plannedMs?: number): boolean {
    if (s.running) return false;
    s.running = true;
    const now = this.clock.monoMs();
    const ctx: RoundContext = { plannedMs, errorState: s.error !== undefined, sinceLastMs: Math.min(now - s.lastStartMs, this.intervalMs) };
    s.lastStartMs = now;
    void this.complete(s, ctx);
    return true;
  }

  /** Awaits one round, then updates error state (one promise per round, no chained closures). */
  private async complete(s: State<J>, ctx: RoundContext): Promise<void> {
    try {
      const report = await s.job.run(ctx);
      s.running = false;
      this.afterRound(s, report ?? undefined);
    } catch (e) {
      s.running = false;
      this.events.onError?.(s.job.key, e);
    }
  }

  private afterRound(s: State<J>, report: RoundReport | undefined): void {
    const p = this.policy;
    if (!p || p.budgetPps <= 0 || s.job.errorCost === undefined || this.jobs.get(s.job.key) !== s) return;
    const now = this.clock.monoMs();
    if (report?.error) {
      if (!s.error) {
        s.error = { sinceMs: now, lastBadMs: now, reprobes: 0 };
        this.inError++;
        this.events.onErrorState?.(s.job, true, { report });
      }
      s.error.lastBadMs = now;
    } else if (s.error && now - s.error.lastBadMs >= p.clearMs) {
      clearTimeout(s.error.timer);
      const info = { report, forMs: now - s.error.sinceMs, reprobes: s.error.reprobes };
      s.error = undefined;
      this.inError--;
      this.events.onErrorState?.(s.job, false, info);
      return;
    }
    if (s.error) this.scheduleReprobe(s, Math.max(0, s.lastStartMs + p.intervalMs - now));
  }

  private scheduleReprobe(s: State<J>, delayMs: number): void {
    const e = s.error!;
    clearTimeout(e.timer);
    e.timer = setTimeout(() => {
      if (this.jobs.get(s.job.key) !== s || s.error !== e || s.running) return; // a regular round is on it
      if (!this.take(s.job.errorCost!)) {
        this.scheduleReprobe(s, this.policy!.intervalMs);
        return;
      }
      e.reprobes++;
      this.runRound(s);
    }, delayMs);
  }

  /** Takes `packets` from the budget's token bucket (capacity: one second of budget). */
  private take(packets: number): boolean {
    const p = this.policy!;
    const now = this.clock.monoMs();
    this.tokens = Math.min(p.budgetPps, this.tokens + ((now - this.tokensAtMs) / 1000) * p.budgetPps);
    this.tokensAtMs = now;
    // A round bigger than the whole bucket may go when the bucket is full (else it never could).
    if (this.tokens >= packets || this.tokens >= p.budgetPps) {
      this.tokens -= packets;
      return true;
    }
    this.skipped++;
    if (now - this.lastBudgetLogMs >= BUDGET_LOG_MS) {
      this.lastBudgetLogMs = now;
      this.events.onBudgetExhausted?.(this.skipped, this.inError);
      this.skipped = 0;
    }
    return false;
  }
}
