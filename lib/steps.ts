/**
 * Work in steps: a generator that yields wherever it may pause, so long work on the server's one
 * thread can run in slices between RPCs (lib/server/lane.ts) instead of holding the thread for
 * hundreds of milliseconds (docs/scale.md "The server's thread"). A step yields nothing of
 * interest; the generator's return value is the work's result. Outside the server (tests,
 * benches, the inline localiser) drain() runs the steps at once.
 */

/** Work that yields (undefined) between its steps and returns a T when done. */
export type Steps<T = void> = Generator<unknown, T, undefined>;

/** Runs every step at once. @returns the work's result @throws what the work throws */
export function drain<T>(steps: Steps<T>): T {
  for (;;) {
    const r = steps.next();
    if (r.done) return r.value;
  }
}
