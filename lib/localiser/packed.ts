/**
 * A window's input for the localiser's worker thread (lib/localiser/worker.ts), packed so that
 * handing it over costs the server's main thread little: the links (hundreds of thousands at
 * thousands of agents) become typed arrays that are transferred, not copied, with their strings
 * interned once; agents, traces and inferred pairs (small) are copied as they are. Structured
 * cloning 300,000 link objects took 1.5-2.5 s of the sender's thread on the 2-core VM; packing
 * them is one pass of Map lookups.
 */
import { drain, type Steps } from "../steps.ts";
import type { WindowInput } from "./model.ts";

/** Links packed between two steps of packWindowSteps(). */
const LINKS_PER_STEP = 2048;

/** Numbers per link in `nums`: sent, lost, forwardSent, forwardLost (NaN: absent). */
const NUMS = 4;
/** String references per link in `refs`: kind, sourceRegion, agentIp, targetRegion, target. */
const REFS = 5;

/** WindowInput with its links packed (packWindow()); a structured-clone-able message. */
export interface PackedWindow extends Omit<WindowInput, "links"> {
  strings: string[];
  refs: Uint32Array;
  nums: Float64Array;
}

/** Packs a window. @returns the message and the buffers to transfer with it */
export function packWindow(w: WindowInput): { packed: PackedWindow; transfer: ArrayBuffer[] } {
  return drain(packWindowSteps(w));
}

/** packWindow() in steps of LINKS_PER_STEP links (the server's lane, lib/server/lane.ts). */
export function* packWindowSteps(w: WindowInput): Steps<{ packed: PackedWindow; transfer: ArrayBuffer[] }> {
  const strings: string[] = [];
  const index = new Map<string, number>();
  const ref = (s: string) => {
    let i = index.get(s);
    if (i === undefined) index.set(s, (i = strings.push(s) - 1));
    return i;
  };
  const n = w.links.length;
  const refs = new Uint32Array(n * REFS);
  const nums = new Float64Array(n * NUMS);
  for (let i = 0; i < n; i++) {
    const l = w.links[i]!;
    refs[i * REFS] = ref(l.kind);
    refs[i * REFS + 1] = ref(l.sourceRegion);
    refs[i * REFS + 2] = ref(l.agentIp);
    refs[i * REFS + 3] = ref(l.targetRegion);
    refs[i * REFS + 4] = ref(l.target);
    nums[i * NUMS] = l.sent;
    nums[i * NUMS + 1] = l.lost;
    nums[i * NUMS + 2] = l.forwardSent ?? NaN;
    nums[i * NUMS + 3] = l.forwardLost ?? NaN;
    if (i % LINKS_PER_STEP === LINKS_PER_STEP - 1) yield;
  }
  const { links: _, ...rest } = w;
  return { packed: { ...rest, strings, refs, nums }, transfer: [refs.buffer as ArrayBuffer, nums.buffer as ArrayBuffer] };
}

/** The window packWindow() packed, with links equal to the original's (forward counts only where they were). */
export function unpackWindow(p: PackedWindow): WindowInput {
  const { strings: s, refs, nums, ...rest } = p;
  const links: WindowInput["links"] = [];
  for (let i = 0; i < refs.length / REFS; i++) {
    const fs = nums[i * NUMS + 2]!;
    links.push({
      kind: s[refs[i * REFS]!]!, sourceRegion: s[refs[i * REFS + 1]!]!, agentIp: s[refs[i * REFS + 2]!]!, targetRegion: s[refs[i * REFS + 3]!]!, target: s[refs[i * REFS + 4]!]!,
      sent: nums[i * NUMS]!, lost: nums[i * NUMS + 1]!,
      ...(Number.isNaN(fs) ? {} : { forwardSent: fs, forwardLost: nums[i * NUMS + 3]! }),
    });
  }
  return { ...rest, links };
}
