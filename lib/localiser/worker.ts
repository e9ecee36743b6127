/**
 * The localiser's worker thread (lib/server/incidents.ts starts it): the localiser's work on a
 * window is O(links) with a large constant (about a second at 300,000 links on the 2-core VM), and
 * on the server's one JavaScript thread it held every RPC for that long each window. Here it runs
 * beside it; the server hands each window over packed (lib/localiser/packed.ts) and reads the
 * explanations back.
 *
 * Messages in: `{ intervalMs, windowEndMs, packed }` (one per published window, in order; the
 * first sets the aggregation interval). Out: `{ windowEndMs, explanations, unexplained, ms }`
 * (`ms`: how long observe() took, milliseconds) or `{ windowEndMs, error }`.
 */
import { Localiser } from "./localise.ts";
import { unpackWindow, type PackedWindow } from "./packed.ts";

declare const self: Worker;

let localiser: Localiser | undefined;

self.onmessage = (e: MessageEvent<{ intervalMs: number; packed: PackedWindow }>) => {
  const { intervalMs, packed } = e.data;
  try {
    localiser ??= new Localiser(intervalMs);
    const t0 = performance.now();
    const { explanations, unexplained } = localiser.observe(unpackWindow(packed));
    postMessage({ windowEndMs: packed.windowEndMs, explanations, unexplained, ms: performance.now() - t0 });
  } catch (err) {
    postMessage({ windowEndMs: packed.windowEndMs, error: String((err as Error)?.stack ?? err) });
  }
};
