/**
 * Per-target probe scheduling: one round per target per probe interval, each target at its own
 * fixed offset inside the interval (a hash of its key), so rounds are spread evenly and never
 * fire together (no thundering herd).
 */

/** A scheduled job: a key, a fingerprint of its settings, and the work of one round. */
export interface Job {
  key: string;
  /** When the fingerprint changes the job is restarted with the new settings. */
  fingerprint: string;
  run(): Promise<void>;
}

/** FNV-1a 32-bit hash of a string, used to spread offsets. */
function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

/** Keeps one timer per job; sync() starts new jobs, restarts changed ones and stops removed ones. */
export class Scheduler {
  private readonly jobs = new Map<string, { job: Job; timer: ReturnType<typeof setTimeout>; running: boolean }>();

  /** @param intervalMs probe interval, milliseconds */
  constructor(private readonly intervalMs: number, private readonly onError: (key: string, e: unknown) => void = () => {}) {}

  /** Offset of a key inside the interval, milliseconds. */
  offsetOf(key: string): number {
    return (fnv1a(key) / 0x100000000) * this.intervalMs;
  }

  /**
   * Makes the running set equal to `jobs`; with `keepMissing`, jobs absent from `jobs` keep
   * running (a partial pool: only additions and changes apply).
   */
  sync(jobs: Job[], keepMissing = false): { started: number; stopped: number } {
    const want = new Map(jobs.map((j) => [j.key, j]));
    let started = 0, stopped = 0;
    for (const [key, s] of this.jobs) {
      const w = want.get(key);
      if ((!w && !keepMissing) || (w && w.fingerprint !== s.job.fingerprint)) {
        clearTimeout(s.timer);
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

  /** Stops every job. */
  stop(): void {
    for (const s of this.jobs.values()) clearTimeout(s.timer);
    this.jobs.clear();
  }

  private start(job: Job): void {
    const now = Date.now();
    const offset = this.offsetOf(job.key);
    let next = Math.floor(now / this.intervalMs) * this.intervalMs + offset;
    if (next <= now) next += this.intervalMs;
    const state = { job, timer: undefined as unknown as ReturnType<typeof setTimeout>, running: false };
    const fire = () => {
      if (this.jobs.get(job.key) !== state) return;
      next += this.intervalMs;
      state.timer = setTimeout(fire, Math.max(0, next - Date.now()));
      if (state.running) return; // the previous round is still going: skip, never overlap
      state.running = true;
      job.run().catch((e) => this.onError(job.key, e)).finally(() => (state.running = false));
    };
    state.timer = setTimeout(fire, next - now);
    this.jobs.set(job.key, state);
  }
}
