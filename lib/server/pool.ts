/**
 * Target pools: what each source region must probe (docs/configuration.md "Discovery").
 *
 * - Every kind's targets come from the probe file's blocks (lib/targets/config.ts).
 * - static discovery: ICMP targets come from the file only.
 * - dynamic discovery: per target region, the file's ICMP targets merged (union, de-duplicated)
 *   with the IPs of that region's known agents: the mesh. (ProberMesh replaced the file's list.)
 *   Known means live or dead but not yet forgotten (-server.agent.forget.after): a silent agent
 *   stays a target, so a cut-off region reads loss 1 instead of vanishing; an agent that said
 *   goodbye (Deregister) leaves at once.
 * - a region never gets its own targets unless -server.probe.self; an agent never gets its own IP.
 */
import { create } from "@bufbuild/protobuf";
import { GetTargetPoolResponseSchema, type GetTargetPoolResponse } from "../rpc/gen/probermesh/v1/probermesh_pb.ts";
import { PROBER_TYPES, type ModuleOf, type ProbeKind, type ProberType, type TargetOf } from "../probes/kind.ts";
import { MESH_KIND, PROBE_KINDS } from "../probes/kinds.ts";
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

/** Goodbyes remembered at most for the grace time (outside input must not grow memory). */
const MAX_LEFT = 10_000;

/** Source regions whose pools are cached at most (region names come from agents). */
const MAX_CACHED_REGIONS = 4096;

const key = (type: ProberType, region: string, address: string) => `${type}\u0000${region}\u0000${address}`;

/**
 * Builds pools from the current probe file and the live agents. Assignment checks are O(1): a
 * set of (kind, target region, address) kept up to date from the file and from registry events
 * (agentChanged), not rebuilt per push or per registry change. A region's pool is built once per
 * change of the file or of the live agents and then served from a cache.
 */
export class TargetPool {
  private readonly cache = new Map<string, GetTargetPoolResponse>();
  private fileKeys = new Set<string>();
  /** Known agents' mesh targets: key -> how many known agents of that region have that IP (normally 1). */
  private readonly agentKeys = new Map<string, number>();
  private versionCounter = 1;

  /** Agents that said goodbye: key -> when, unix ms (at most MAX_LEFT, oldest out first). */
  private readonly left = new Map<string, number>();

  /**
   * @param leftGraceMs how long after a goodbye results about that agent are dropped as
   *   `target_left` rather than rejected as `not_assigned`, milliseconds (the server passes
   *   max(1 min, ratio x interval))
   */
  constructor(private file: ProbeFile, readonly discovery: Discovery, private readonly probeSelf: boolean, registry: AgentRegistry, private readonly leftGraceMs = 0, private readonly now = () => Date.now()) {
    this.indexFile();
    for (const a of registry.all()) this.agentChanged(a.region, a.ip, true);
  }

  /**
   * Changes whenever a pool may have changed (HeartbeatResponse.pool_version): agents fetch their
   * pool at once when it does. Starts at a random point so that a restarted server never repeats
   * a version an agent saw before.
   */
  get version(): bigint {
    return BigInt(this.versionBase) * 1_000_000n + BigInt(this.versionCounter);
  }
  private readonly versionBase = 1 + Math.floor(Math.random() * 1_000_000);

  private indexFile(): void {
    this.fileKeys = new Set(this.file.blocks.flatMap((b) => b.targets.map((t) => key(b.proberType, b.region, t))));
  }

  private changed(): void {
    this.cache.clear();
    this.versionCounter++;
  }

  /** Replaces the probe file (after /-/reload validated it). */
  replaceFile(file: ProbeFile): void {
    this.file = file;
    this.indexFile();
    this.changed();
  }

  /**
   * An agent became known (`known`: its first heartbeat) or left (forgotten, or `goodbye`); call
   * from the registry's join and forget events. A goodbye is remembered for the grace time
   * (leftRecently), a join ends it.
   */
  agentChanged(region: string, ip: string, known: boolean, goodbye = false): void {
    if (this.discovery !== "dynamic") return;
    const k = key(MESH_KIND, region, ip);
    this.left.delete(k);
    if (goodbye) {
      if (this.left.size >= MAX_LEFT) this.left.delete(this.left.keys().next().value!);
      this.left.set(k, this.now());
    }
    const n = (this.agentKeys.get(k) ?? 0) + (known ? 1 : -1);
    if (n > 0) this.agentKeys.set(k, n);
    else this.agentKeys.delete(k);
    this.changed();
  }

  /** The current probe file. */
  get probeFile(): ProbeFile {
    return this.file;
  }

  /**
   * The pool for agents of `sourceRegion`; `agentIp` (if given) is left out of the ICMP targets.
   * With `redact`, module secrets are replaced by it ("<secret>" for display, "" for an agent that
   * may not have them). The result is a fresh message the caller may change.
   */
  poolFor(sourceRegion: string, agentIp = "", redact?: string): GetTargetPoolResponse {
    const ck = `${sourceRegion}\u0000${redact ?? "\u0001"}`;
    let full = this.cache.get(ck);
    if (!full) {
      full = this.build(sourceRegion, redact);
      if (this.cache.size >= MAX_CACHED_REGIONS) this.cache.clear();
      this.cache.set(ck, full);
    }
    const out = create(GetTargetPoolResponseSchema, { partial: full.partial });
    for (const t of PROBER_TYPES) (out[t] as TargetOf<typeof t>[]) = full[t];
    if (agentIp) out[MESH_KIND] = full[MESH_KIND].filter((t) => t.address !== agentIp);
    return out;
  }

  private build(sourceRegion: string, redact?: string): GetTargetPoolResponse {
    const pool = create(GetTargetPoolResponseSchema, {});
    const wanted = (region: string) => this.probeSelf || region !== sourceRegion;
    // The mesh: ICMP targets per region, the file's merged with live agents' IPs.
    const mesh = new Map<string, { module: ModuleOf<typeof MESH_KIND>; targets: Set<string> }>();
    const fileBlocks: ProbeBlock[] = [];
    for (const b of this.file.blocks) {
      if (!wanted(b.region)) continue;
      if (b.proberType === MESH_KIND) mesh.set(b.region, { module: b.module, targets: new Set(b.targets) });
      else fileBlocks.push(b);
    }
    for (const k of this.agentKeys.keys()) {
      const [, region, ip] = k.split("\u0000") as [string, string, string];
      if (!wanted(region)) continue;
      let entry = mesh.get(region);
      if (!entry) mesh.set(region, (entry = { module: PROBE_KINDS[MESH_KIND].defaultModule(), targets: new Set() }));
      entry.targets.add(ip);
    }
    for (const [region, { module, targets }] of [...mesh].sort(([a], [b]) => a.localeCompare(b))) addTargets(pool, MESH_KIND, region, targets, module, "", redact);
    for (const b of fileBlocks) addTargets(pool, b.proberType, b.region, b.targets, b.module as ModuleOf<typeof b.proberType>, "", redact);
    return pool;
  }

  /**
   * True when `address` of `targetRegion` was an agent that said goodbye within the grace time:
   * rounds other agents had in flight when it left (or before their next pool fetch) are dropped
   * as `target_left`, neither loss nor a rejection worth a warning. O(1).
   */
  leftRecently(type: ProberType, targetRegion: string, address: string): boolean {
    const t = this.left.get(key(type, targetRegion, address));
    return t !== undefined && this.now() - t <= this.leftGraceMs;
  }

  /** True when `address` of `targetRegion` is in `sourceRegion`'s pool (push validation). O(1). */
  isAssigned(sourceRegion: string, type: ProberType, targetRegion: string, address: string): boolean {
    if (!this.probeSelf && targetRegion === sourceRegion) return false;
    const k = key(type, targetRegion, address);
    return this.fileKeys.has(k) || this.agentKeys.has(k);
  }

  /**
   * True when a result of this kind could name a known agent rather than a file target (dynamic
   * discovery, the mesh kind): such a result becomes verifiable once that agent registers.
   */
  mayNameAnAgent(type: ProberType): boolean {
    return this.discovery === "dynamic" && type === MESH_KIND;
  }
}
