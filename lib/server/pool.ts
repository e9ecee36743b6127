/**
 * Target pools: what each source region must probe (docs/configuration.md "Discovery").
 *
 * - Every kind's targets come from the probe file's blocks (lib/targets/config.ts).
 * - static discovery: ICMP targets come from the file only.
 * - dynamic discovery: per target region, the file's ICMP targets merged (union, de-duplicated)
 *   with the IPs of that region's live agents: the mesh. (ProberMesh replaced the file's list.)
 * - a region never gets its own targets unless -server.probe.self; an agent never gets its own IP.
 */
import { create } from "@bufbuild/protobuf";
import { GetTargetPoolResponseSchema, type GetTargetPoolResponse, type IcmpModule } from "../rpc/gen/probermesh/v1/probermesh_pb.ts";
import { PROBER_TYPES, type ModuleOf, type ProbeKind, type ProberType, type TargetOf } from "../probes/kind.ts";
import { PROBE_KINDS } from "../probes/kinds.ts";
import type { ProbeBlock, ProbeFile } from "../targets/config.ts";
import type { AgentRegistry } from "./registry.ts";

/** ICMP target discovery mode (-server.icmp.discovery). */
export const DISCOVERY_MODES = ["static", "dynamic"] as const;
export type Discovery = (typeof DISCOVERY_MODES)[number];

/** Appends `addresses` of `region` to the pool's list of `type`; secrets replaced by `redact` when given. */
function addTargets<K extends ProberType>(pool: GetTargetPoolResponse, type: K, region: string, addresses: Iterable<string>, module: ModuleOf<K>, skip = "", redact?: string): void {
  const kind = PROBE_KINDS[type] as ProbeKind<K>;
  const list = pool[type] as TargetOf<K>[];
  const m = redact === undefined ? module : kind.redactModule(module, redact);
  for (const a of addresses) if (a !== skip) list.push(kind.target(region, a, m));
}

/** The addresses of a pool's list of `type`. */
function addressesOf<K extends ProberType>(pool: GetTargetPoolResponse, type: K): string[] {
  const kind = PROBE_KINDS[type] as ProbeKind<K>;
  return (pool[type] as TargetOf<K>[]).map((t) => `${t.targetRegion}\u0000${kind.addressOf(t)}`);
}

/** Source regions whose assignment sets are cached at most (region names come from agents). */
const MAX_CACHED_REGIONS = 4096;

/** Builds pools from the current probe file and the live agents. */
export class TargetPool {
  private cache = new Map<string, { gen: string; keys: Set<string> }>();
  private fileGeneration = 0;

  constructor(private file: ProbeFile, readonly discovery: Discovery, private readonly probeSelf: boolean, private readonly registry: AgentRegistry) {}

  /** Replaces the probe file (after /-/reload validated it). */
  replaceFile(file: ProbeFile): void {
    this.file = file;
    this.fileGeneration++;
  }

  /** The current probe file. */
  get probeFile(): ProbeFile {
    return this.file;
  }

  /**
   * The pool for agents of `sourceRegion`; `agentIp` (if given) is left out of the ICMP targets.
   * With `redact`, module secrets are replaced by it ("<secret>" for display, "" for an agent that
   * may not have them).
   */
  poolFor(sourceRegion: string, agentIp = "", redact?: string): GetTargetPoolResponse {
    const pool = create(GetTargetPoolResponseSchema, {});
    const wanted = (region: string) => this.probeSelf || region !== sourceRegion;
    // The mesh: ICMP targets per region, the file's merged with live agents' IPs.
    const mesh = new Map<string, { module: IcmpModule; targets: Set<string> }>();
    const fileBlocks: ProbeBlock[] = [];
    for (const b of this.file.blocks) {
      if (!wanted(b.region)) continue;
      if (b.proberType === "icmp") mesh.set(b.region, { module: b.module, targets: new Set(b.targets) });
      else fileBlocks.push(b);
    }
    if (this.discovery === "dynamic") {
      for (const a of this.registry.live()) {
        if (!wanted(a.region)) continue;
        let entry = mesh.get(a.region);
        if (!entry) mesh.set(a.region, (entry = { module: PROBE_KINDS.icmp.defaultModule(), targets: new Set() }));
        entry.targets.add(a.ip);
      }
    }
    for (const [region, { module, targets }] of [...mesh].sort(([a], [b]) => a.localeCompare(b))) addTargets(pool, "icmp", region, targets, module, agentIp, redact);
    for (const b of fileBlocks) addTargets(pool, b.proberType, b.region, b.targets, b.module as ModuleOf<typeof b.proberType>, "", redact);
    return pool;
  }

  /** True when `address` of `targetRegion` is in `sourceRegion`'s pool (push validation). */
  isAssigned(sourceRegion: string, type: ProberType, targetRegion: string, address: string): boolean {
    const gen = `${this.fileGeneration}/${this.registry.generation}`;
    let c = this.cache.get(sourceRegion);
    if (!c || c.gen !== gen) {
      const p = this.poolFor(sourceRegion);
      const keys = new Set<string>();
      for (const t of PROBER_TYPES) for (const k of addressesOf(p, t)) keys.add(`${t}\u0000${k}`);
      c = { gen, keys };
      if (this.cache.size >= MAX_CACHED_REGIONS) this.cache.clear();
      this.cache.set(sourceRegion, c);
    }
    return c.keys.has(`${type}\u0000${targetRegion}\u0000${address}`);
  }

  /**
   * True when a result of this kind could name a live agent rather than a file target (dynamic
   * discovery, the mesh kind): such a result becomes verifiable once that agent registers.
   */
  mayNameAnAgent(type: ProberType): boolean {
    return this.discovery === "dynamic" && type === "icmp";
  }
}
