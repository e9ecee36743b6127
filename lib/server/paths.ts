/**
 * The latest path traces per (source region, target, kind, source port), in bounded memory: at
 * most `perTarget` traces per key, `maxKeys` keys and `maxHops` hops in all (the hop bound caps
 * memory: a hop with four other IPv6 addresses, the largest valid, takes ~720 bytes of heap,
 * measured), the least recently updated key going first. Served by GET /api/v1/paths (docs/api.md).
 */
import type { PathTrace } from "../rpc/gen/probermesh/v1/probermesh_pb.ts";

/** A trace as stored: who sent it, and the message. */
export interface StoredPath {
  sourceRegion: string;
  agentIp: string;
  trace: PathTrace;
}

/** Default bounds: traces kept per (source region, target), keys and hops kept overall. */
export const PATHS_PER_TARGET = 3;
export const PATHS_MAX_KEYS = 10_000;
export const PATHS_MAX_HOPS = 100_000;

/**
 * Latest traces per (source region, target region, target address, kind, source port): a flow
 * trace (kind udp / tcp, one per source port) never evicts the ICMP trace of the same target, nor
 * the trace of another flow, so the console can show them side by side. Kind "" (agents before
 * 0.6) is "icmp".
 */
export class PathStore {
  /** Map order is update order: the first key is the least recently updated. */
  private readonly byKey = new Map<string, StoredPath[]>();

  private hops = 0;

  constructor(
    private readonly perTarget = PATHS_PER_TARGET,
    private readonly maxKeys = PATHS_MAX_KEYS,
    private readonly maxHops = PATHS_MAX_HOPS,
  ) {}

  /** Number of (source region, target, kind, source port) keys held. */
  get size(): number {
    return this.byKey.size;
  }

  /** Keeps a trace (newest first), evicting beyond the bounds. */
  add(p: StoredPath): void {
    const k = `${p.sourceRegion}\u0000${p.trace.targetRegion}\u0000${p.trace.address}\u0000${p.trace.kind || "icmp"}\u0000${p.trace.sourcePort}`;
    const list = this.byKey.get(k) ?? [];
    this.byKey.delete(k);
    list.unshift(p);
    this.hops += p.trace.hops.length;
    for (const gone of list.splice(this.perTarget)) this.hops -= gone.trace.hops.length;
    this.byKey.set(k, list);
    // Oldest keys go first; the key just added stays (one trace is at most 64 hops).
    while (this.byKey.size > 1 && (this.byKey.size > this.maxKeys || this.hops > this.maxHops)) {
      const [oldest, traces] = this.byKey.entries().next().value!;
      for (const t of traces) this.hops -= t.trace.hops.length;
      this.byKey.delete(oldest);
    }
  }

  /** Hops held in all traces (the memory bound). */
  get hopCount(): number {
    return this.hops;
  }

  /** Traces matching the filters (an empty filter matches all), newest first. */
  list(sourceRegion = "", targetRegion = ""): StoredPath[] {
    const out: StoredPath[] = [];
    for (const list of this.byKey.values()) {
      for (const p of list) if ((!sourceRegion || p.sourceRegion === sourceRegion) && (!targetRegion || p.trace.targetRegion === targetRegion)) out.push(p);
    }
    const ms = (p: StoredPath) => Number(p.trace.time?.seconds ?? 0n) * 1000 + (p.trace.time?.nanos ?? 0) / 1e6;
    return out.sort((a, b) => ms(b) - ms(a));
  }
}
