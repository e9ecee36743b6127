/**
 * How a pool is laid out and which of its entries an agent gets (lib/server/pool.ts builds the
 * segments from the probe file and the known agents; docs/scale.md "Pool answers").
 *
 * A segment is one kind's targets of one target region (or one file block); a layout is every
 * segment in pool order with every entry numbered in that order. An agent's pool is runs of
 * those numbers (pool_wire.ts answerFrom()): in the full mesh whole segments, a few runs; with
 * peer subsets its peers' entries, found per peer through its region's segments. Both are built
 * per segment, never per entry: a join rebuilds the layout (~1,500 segments at 5,000 agents in
 * 500 regions), and an answer must not look at 15,000 entries.
 */
import type { ProberType, TargetOf } from "../probes/kind.ts";
import { runsOf, subtractFromRuns, type EncodedRun, type WireArena } from "./pool_wire.ts";

/** One target of a segment; `agent` is its agent's identity (peerKey) when it is a known agent's mesh target the file does not list. */
export interface Entry {
  target: TargetOf<ProberType>;
  /** The host it names (the address without a port), to leave out an agent's own. */
  host: string;
  agent?: string;
}

/**
 * A segment's entries (file-listed targets first, then known agents in address order) and where
 * each agent's and each host's entries are, so a pool takes its few peers, and leaves out its
 * own IP, without scanning the rest.
 */
export interface Segment {
  entries: Entry[];
  /** The entries that are not a known agent's (file targets, and agents the file lists). */
  listed: Entry[];
  /** Agent identity (peerKey) -> index of its entry in `entries`. */
  byAgent: Map<string, number>;
  /** Entry.host -> indices of the entries naming that host. */
  byHost: Map<string, number[]>;
  /** The entries encoded back to back (pool_wire.ts segmentWire()), built at the first binary answer. */
  wire?: EncodedRun;
}

/** A pool's segments in pool order, every entry numbered in that order, and which segments each region has. */
export interface Layout {
  /** Segments in pool order (kind, target region (a file block's own region)); `first` is the index of the segment's first entry. */
  items: { type: ProberType; region: string; seg: Segment; first: number }[];
  /** Entries in all (the index after the last). */
  size: number;
  /** Items with entries that are not a known agent's (file targets): never subsetted. */
  listedItems: number[];
  /** Target region -> indices of its items (where its agents' entries are). */
  regionItems: Map<string, number[]>;
  /** Agent identity -> the indices of its entries, filled as peer-subset pools ask (one lookup per peer and answer). */
  agentEntries: Map<string, number[]>;
  /** Every entry encoded, back to back (built at the first binary answer, from the segments' own). */
  arena?: WireArena;
}

/** A segment of `entries` with its indices by agent and by host. */
export function newSegment(entries: Entry[]): Segment {
  const seg: Segment = { entries, listed: entries.filter((e) => !e.agent), byAgent: new Map(), byHost: new Map() };
  for (const [i, e] of entries.entries()) {
    if (e.agent) seg.byAgent.set(e.agent, i);
    const at = seg.byHost.get(e.host);
    if (at) at.push(i);
    else seg.byHost.set(e.host, [i]);
  }
  return seg;
}

/** Numbers the entries of `items` (segments in pool order) and indexes the items by region: O(segments), not O(entries). */
export function assembleLayout(items: Layout["items"]): Layout {
  const out: Layout = { items, size: 0, listedItems: [], regionItems: new Map(), agentEntries: new Map() };
  items.forEach((it, i) => {
    it.first = out.size;
    out.size += it.seg.entries.length;
    if (it.seg.listed.length) out.listedItems.push(i);
    const at = out.regionItems.get(it.region);
    if (at) at.push(i);
    else out.regionItems.set(it.region, [i]);
  });
  return out;
}

/** The index in `layout.items` of the segment holding entry `g` (0 <= g < size): a binary search over the segments. */
function itemOf(layout: Layout, g: number): number {
  const { items } = layout;
  let lo = 0, hi = items.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (items[mid]!.first <= g) lo = mid;
    else hi = mid - 1;
  }
  // Empty segments share their `first` with the next one: the one holding g is the last of them.
  return lo;
}

/** Calls `fn` with every entry of `runs` (selectRuns()) and its kind, in order. */
export function forEachEntry(layout: Layout, runs: Int32Array, fn: (type: ProberType, e: Entry) => void): void {
  for (let k = 0; k < runs.length; k += 2) {
    let i = itemOf(layout, runs[k]!);
    for (let g = runs[k]!; g < runs[k + 1]!; g++) {
      while (g >= layout.items[i]!.first + layout.items[i]!.seg.entries.length) i++;
      const it = layout.items[i]!;
      fn(it.type, it.seg.entries[g - it.first]!);
    }
  }
}

/** The indices of agent `id`'s entries: in its region's segments (its identity is region\0ip); kept in the layout. */
function agentEntries(layout: Layout, id: string): number[] {
  let out = layout.agentEntries.get(id);
  if (out) return out;
  out = [];
  for (const i of layout.regionItems.get(id.slice(0, id.indexOf("\u0000"))) ?? []) {
    const { seg, first } = layout.items[i]!;
    const j = seg.byAgent.get(id);
    if (j !== undefined) out.push(first + j);
  }
  layout.agentEntries.set(id, out);
  return out;
}

/** Who asks for a pool (selectRuns()). */
export interface PoolAsker {
  sourceRegion: string;
  /** The agent's IP: its own targets are left out ("" = the region's whole pool, e.g. for /-/targets). */
  agentIp: string;
  /** -server.probe.self: the own region's targets too. */
  probeSelf: boolean;
  /** The regions where `agentIp` is a known agent (where its own mesh targets are). */
  agentRegions: Iterable<string>;
  /** With peer subsets: the agent's peers (peerKey identities); undefined = every agent (full mesh). */
  peers: ReadonlySet<string> | undefined;
  /** True when a tcp target is a known agent's listener (an agent leaves out its own; a file's tcp target on its IP stays). */
  isAgentTcp(t: TargetOf<"tcp">): boolean;
}

/**
 * The entries of `a`'s pool as runs of `layout`'s indices (pool_wire.ts answerFrom()), in layout
 * order, so every server hands out the same pool. Full mesh: every segment but the own region's,
 * a few runs. Peer subsets: file targets whole, the own region whole (probeSelf), and of other
 * regions' agents only the peers. Either way without the agent's own targets: its IP, and
 * ip:port of its tcp listener.
 */
export function selectRuns(layout: Layout, a: PoolAsker): Int32Array {
  // The agent's own entries are in the segments of the regions where its IP is a known agent,
  // and in those listing file targets.
  const ownTargets: number[] = [];
  if (a.agentIp) {
    const items = new Set(layout.listedItems);
    for (const region of a.agentRegions) for (const i of layout.regionItems.get(region) ?? []) items.add(i);
    for (const i of items) {
      const { type, seg, first } = layout.items[i]!;
      for (const j of seg.byHost.get(a.agentIp) ?? []) if (type !== "tcp" || a.isAgentTcp(seg.entries[j]!.target as TargetOf<"tcp">)) ownTargets.push(first + j);
    }
    ownTargets.sort((x, y) => x - y);
  }
  if (!a.peers) {
    const runs: number[] = [];
    for (const { region, seg, first } of layout.items) {
      if ((!a.probeSelf && region === a.sourceRegion) || !seg.entries.length) continue;
      if (runs.length && runs[runs.length - 1] === first) runs[runs.length - 1] = first + seg.entries.length;
      else runs.push(first, first + seg.entries.length);
    }
    return subtractFromRuns(runs, ownTargets);
  }
  const sel: number[] = [];
  for (const i of layout.listedItems) {
    const { region, seg, first } = layout.items[i]!;
    if (region !== a.sourceRegion) for (const [j, e] of seg.entries.entries()) if (!e.agent) sel.push(first + j);
  }
  if (a.probeSelf) for (const { region, seg, first } of layout.items) if (region === a.sourceRegion) for (let g = first; g < first + seg.entries.length; g++) sel.push(g);
  for (const id of a.peers) for (const g of agentEntries(layout, id)) sel.push(g);
  return runsOf(Int32Array.from(sel).sort(), new Set(ownTargets));
}
