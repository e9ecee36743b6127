/**
 * Target pools: what each source region must probe (docs/configuration.md "Discovery").
 *
 * - Every kind's targets come from the probe file's blocks (lib/targets/config.ts).
 * - static discovery: the mesh kinds' targets come from the file only.
 * - dynamic discovery: per target region, the file's ICMP targets merged (union, de-duplicated)
 *   with the IPs of that region's known agents: the mesh. (ProberMesh replaced the file's list.)
 *   Since 0.6 the flow mesh too (MESH_FLOW_KINDS): each known agent's UDP responder `ip:udp_port`
 *   as a udp target (module: the region's file `udp` block, whose targets are merged in, else the
 *   default) and its TCP listener `ip:tcp_port` as a tcp target with the mesh connect module
 *   (meshTcpModule()); an agent announcing port 0 (or before 0.6) gets none of that kind.
 *   Known means live or dead but not yet forgotten (-server.agent.forget.after): a silent agent
 *   stays a target, so a cut-off region reads loss 1 instead of vanishing; an agent that said
 *   goodbye (Deregister) leaves at once.
 * - a region never gets its own targets unless -server.probe.self; an agent never gets its own IP
 *   (mesh kinds: neither the IP nor IP:port).
 */
import { create } from "@bufbuild/protobuf";
import { GetTargetPoolResponseSchema, type GetTargetPoolResponse } from "../rpc/gen/probermesh/v1/probermesh_pb.ts";
import { PROBER_TYPES, type ModuleOf, type ProbeKind, type ProberType, type TargetOf } from "../probes/kind.ts";
import { agentHostPort, MESH_KIND, MESH_KINDS, MESH_MERGED_KINDS, meshTcpModule, PROBE_KINDS } from "../probes/kinds.ts";
import { splitHostPortTarget } from "../probes/host_port.ts";
import type { ProbeBlock, ProbeFile } from "../targets/config.ts";
import type { AgentEntry, AgentRegistry } from "./registry.ts";

/** What the pool needs of a known agent: where it is and which responders it announced. */
export type MeshAgent = Pick<AgentEntry, "region" | "ip" | "udpPort" | "tcpPort">;

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

const MERGED = MESH_MERGED_KINDS;
type MeshMerged = (typeof MERGED)[number];

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
    for (const a of registry.all()) this.agentChanged(a, true);
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

  /** The mesh targets of an agent: its IP (icmp), and ip:port for each responder it announced. */
  private static meshKeys(a: MeshAgent): string[] {
    const out = [key(MESH_KIND, a.region, a.ip)];
    if (a.udpPort > 0) out.push(key("udp", a.region, agentHostPort(a.ip, a.udpPort)));
    if (a.tcpPort > 0) out.push(key("tcp", a.region, agentHostPort(a.ip, a.tcpPort)));
    return out;
  }

  /** One known agent more (+1) or less (-1) behind mesh target `k`; a goodbye is remembered for the grace time. */
  private adjust(k: string, delta: 1 | -1, goodbye: boolean): void {
    this.left.delete(k);
    if (goodbye) {
      if (this.left.size >= MAX_LEFT) this.left.delete(this.left.keys().next().value!);
      this.left.set(k, this.now());
    }
    const n = (this.agentKeys.get(k) ?? 0) + delta;
    if (n > 0) this.agentKeys.set(k, n);
    else this.agentKeys.delete(k);
  }

  /**
   * An agent became known (`known`: its first heartbeat) or left (forgotten, or `goodbye`); call
   * from the registry's join and forget events. A goodbye is remembered for the grace time
   * (leftRecently), a join ends it.
   */
  agentChanged(a: MeshAgent, known: boolean, goodbye = false): void {
    if (this.discovery !== "dynamic") return;
    for (const k of TargetPool.meshKeys(a)) this.adjust(k, known ? 1 : -1, goodbye);
    this.changed();
  }

  /**
   * A known agent announced other responder ports (a heartbeat or a shared record): its old
   * ip:port targets leave (remembered like a goodbye, so rounds in flight are dropped quietly as
   * target_left) and the new ones join.
   */
  agentPortsChanged(previous: MeshAgent, next: MeshAgent): void {
    if (this.discovery !== "dynamic") return;
    const before = new Set(TargetPool.meshKeys(previous));
    const after = new Set(TargetPool.meshKeys(next));
    let changed = false;
    for (const k of before) if (!after.has(k)) (this.adjust(k, -1, true), (changed = true));
    for (const k of after) if (!before.has(k)) (this.adjust(k, 1, false), (changed = true));
    if (changed) this.changed();
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
    if (agentIp) {
      out[MESH_KIND] = full[MESH_KIND].filter((t) => t.address !== agentIp);
      const own = (address: string) => splitHostPortTarget(address)?.host === agentIp;
      out.udp = full.udp.filter((t) => !own(t.address));
      out.tcp = full.tcp.filter((t) => !(own(t.address) && this.agentKeys.has(key("tcp", t.targetRegion, t.address))));
    }
    return out;
  }

  private build(sourceRegion: string, redact?: string): GetTargetPoolResponse {
    const pool = create(GetTargetPoolResponseSchema, {});
    const wanted = (region: string) => this.probeSelf || region !== sourceRegion;
    // The mesh per kind and region: the file's icmp / udp block merged with known agents' addresses.
    type Mesh = Map<string, { module: ModuleOf<MeshMerged>; targets: Set<string> }>;
    const mesh = { icmp: new Map(), udp: new Map() } as { [K in MeshMerged]: Mesh };
    const fileBlocks: ProbeBlock[] = [];
    /** tcp targets of the file per region: an agent's listener listed there keeps the file's module. */
    const fileTcp = new Set<string>();
    for (const b of this.file.blocks) {
      if (!wanted(b.region)) continue;
      if (b.proberType === MESH_KIND || b.proberType === "udp") mesh[b.proberType].set(b.region, { module: b.module as ModuleOf<MeshMerged>, targets: new Set(b.targets) });
      else fileBlocks.push(b);
      if (b.proberType === "tcp") for (const t of b.targets) fileTcp.add(`${b.region}\u0000${t}`);
    }
    const tcpMesh = new Map<string, Set<string>>();
    for (const k of this.agentKeys.keys()) {
      const [type, region, address] = k.split("\u0000") as [ProberType, string, string];
      if (!wanted(region)) continue;
      if (type === "tcp") {
        if (fileTcp.has(`${region}\u0000${address}`)) continue;
        let s = tcpMesh.get(region);
        if (!s) tcpMesh.set(region, (s = new Set()));
        s.add(address);
        continue;
      }
      const m = mesh[type as MeshMerged];
      let entry = m.get(region);
      if (!entry) m.set(region, (entry = { module: PROBE_KINDS[type as MeshMerged].defaultModule(), targets: new Set() }));
      entry.targets.add(address);
    }
    const byRegion = <V>(m: Map<string, V>) => [...m].sort(([a], [b]) => a.localeCompare(b));
    for (const type of MERGED) for (const [region, { module, targets }] of byRegion(mesh[type])) addTargets(pool, type, region, targets, module as ModuleOf<typeof type>, "", redact);
    for (const b of fileBlocks) addTargets(pool, b.proberType, b.region, b.targets, b.module as ModuleOf<typeof b.proberType>, "", redact);
    if (tcpMesh.size) {
      const module = meshTcpModule();
      for (const [region, targets] of byRegion(tcpMesh)) addTargets(pool, "tcp", region, targets, module, "", redact);
    }
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
   * discovery, the mesh kinds): such a result becomes verifiable once that agent registers.
   */
  mayNameAnAgent(type: ProberType): boolean {
    return this.discovery === "dynamic" && (MESH_KINDS as readonly ProberType[]).includes(type);
  }
}
