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
import { type ModuleOf, type ProbeKind, type ProberType, type TargetOf } from "../probes/kind.ts";
import { agentHostPort, MESH_KIND, MESH_KINDS, MESH_MERGED_KINDS, meshTcpModule, PROBE_KINDS } from "../probes/kinds.ts";
import { splitHostPortTarget } from "../probes/host_port.ts";
import type { ProbeBlock, ProbeFile } from "../targets/config.ts";
import { PeerSubsets, peerKey } from "./peers.ts";
import { assembleLayout, forEachEntry, newSegment, selectRuns, type Entry, type Layout, type Segment } from "./pool_layout.ts";
import { answerFrom, buildArena, segmentWire } from "./pool_wire.ts";
import { portsDiffer, type AgentEntry, type AgentRegistry, type RegistryEvents } from "./registry.ts";

/** What the pool needs of a known agent: where it is and which responders it announced. */
export type MeshAgent = Pick<AgentEntry, "region" | "ip" | "udpPort" | "tcpPort">;

/** ICMP target discovery mode (-server.icmp.discovery). */
export const DISCOVERY_MODES = ["static", "dynamic"] as const;
export type Discovery = (typeof DISCOVERY_MODES)[number];

/** Goodbyes remembered at most for the grace time (outside input must not grow memory). */
const MAX_LEFT = 10_000;

const MERGED = MESH_MERGED_KINDS;
type MeshMerged = (typeof MERGED)[number];

const key = (type: ProberType, region: string, address: string) => `${type}\u0000${region}\u0000${address}`;

/**
 * Builds pools from the current probe file and the known agents, incrementally: each target
 * region's part of the pool (a segment per kind) is built once and kept until that region's
 * agents or the file change, and a pool is the concatenation of the segments it needs, so a join
 * or leave rebuilds one region's segments, not every pool. With peer subsets
 * (-server.mesh.peers.per.region, lib/server/peers.ts) an agent gets only its peers of the mesh
 * and its pool version changes only when they do. Assignment checks are O(1): a set of
 * (kind, target region, address) kept up to date from the file and from registry events.
 */
export class TargetPool {
  private fileKeys = new Set<string>();
  /** Known agents' mesh targets: key -> how many known agents of that region have that IP (normally 1). */
  private readonly agentKeys = new Map<string, number>();
  /** Known agents' IPs -> region -> how many known agents there have it (where an agent's own IP is a target). */
  private readonly agentIpRegions = new Map<string, Map<string, number>>();
  /** The same per (kind, region): `type\0region` -> address -> the agent's identity (peerKey). */
  private readonly agentTargets = new Map<string, Map<string, string>>();
  /** Segments: `variant\0type\0region` (region "" for the file's other blocks) -> entries. */
  private readonly segments = new Map<string, Segment>();
  /** Per redaction variant: every segment in pool order (layout()); cleared with any segment. */
  private readonly layouts = new Map<string, Layout>();
  /** Target regions per merged kind and of the tcp mesh, sorted; undefined when stale. */
  private order: { merged: { type: MeshMerged; region: string }[]; tcp: string[] } | undefined;
  /** Peer subsets, when -server.mesh.peers.per.region > 0 in dynamic discovery. */
  private readonly subsets: PeerSubsets | undefined;
  /** Monotonic change counter; stamps of the last change of everyone's pools and of each agent's. */
  private tick = 1;
  private globalStamp = 1;
  private readonly agentStamps = new Map<string, number>();

  /** Agents that said goodbye: key -> when, unix ms (at most MAX_LEFT, oldest out first). */
  private readonly left = new Map<string, number>();

  /**
   * @param leftGraceMs how long after a goodbye results about that agent are dropped as
   *   `target_left` rather than rejected as `not_assigned`, milliseconds (the server passes
   *   max(1 min, ratio x interval))
   * @param peersPerRegion -server.mesh.peers.per.region: 0 = every agent (the full mesh)
   */
  constructor(private file: ProbeFile, readonly discovery: Discovery, private readonly probeSelf: boolean, registry: AgentRegistry, private readonly leftGraceMs = 0, private readonly now = () => Date.now(), readonly peersPerRegion = 0) {
    if (discovery === "dynamic" && peersPerRegion > 0) this.subsets = new PeerSubsets(peersPerRegion);
    this.indexFile();
    for (const a of registry.all()) this.agentChanged(a, true);
  }

  /**
   * Changes whenever the pool of agents in general may have changed. Starts at a random point so
   * that a restarted server never repeats a version an agent saw before. See versionFor().
   */
  get version(): bigint {
    return this.versionBase + BigInt(this.globalStamp);
  }
  private readonly versionBase = BigInt(1 + Math.floor(Math.random() * 1_000_000)) << 32n;

  /**
   * HeartbeatResponse.pool_version for one agent: changes whenever its pool may have changed, and
   * with peer subsets only then (agents fetch their pool at once when it changes).
   */
  versionFor(region: string, ip: string): bigint {
    return this.versionBase + BigInt(Math.max(this.globalStamp, this.agentStamps.get(peerKey(region, ip)) ?? 0));
  }

  private indexFile(): void {
    this.fileKeys = new Set(this.file.blocks.flatMap((b) => b.targets.map((t) => key(b.proberType, b.region, t))));
  }

  /** Every pool changed (the file, or the full mesh's agents). */
  private changedAll(): void {
    this.segments.clear();
    this.layouts.clear();
    this.order = undefined;
    this.globalStamp = ++this.tick;
  }

  /** Region `region`'s segments changed; with subsets only `affected` agents' pools did. */
  private changedRegion(region: string, affected?: Iterable<string>): void {
    for (const k of [...this.segments.keys()]) if (k.endsWith(`\u0000${region}`)) this.segments.delete(k);
    this.layouts.clear();
    if (!affected) {
      this.globalStamp = ++this.tick;
      return;
    }
    const t = ++this.tick;
    for (const a of affected) this.agentStamps.set(a, t);
  }

  /** Replaces the probe file (after /-/reload validated it). */
  replaceFile(file: ProbeFile): void {
    this.file = file;
    this.indexFile();
    this.changedAll();
  }

  /** The mesh targets of an agent: its IP (icmp), and ip:port for each responder it announced. */
  private static meshKeys(a: MeshAgent): string[] {
    const out = [key(MESH_KIND, a.region, a.ip)];
    if (a.udpPort > 0) out.push(key("udp", a.region, agentHostPort(a.ip, a.udpPort)));
    if (a.tcpPort > 0) out.push(key("tcp", a.region, agentHostPort(a.ip, a.tcpPort)));
    return out;
  }

  /** One known agent more (+1) or less (-1) behind mesh target `k`; a goodbye is remembered for the grace time. */
  private adjust(k: string, delta: 1 | -1, goodbye: boolean, agent: string): void {
    this.left.delete(k);
    if (goodbye) {
      if (this.left.size >= MAX_LEFT) this.left.delete(this.left.keys().next().value!);
      this.left.set(k, this.now());
    }
    const n = (this.agentKeys.get(k) ?? 0) + delta;
    const i = k.lastIndexOf("\u0000");
    const tk = k.slice(0, i), address = k.slice(i + 1);
    let m = this.agentTargets.get(tk);
    if (n > 0) {
      this.agentKeys.set(k, n);
      // A (kind, region) that had no agent: the regions' order changes (a join in a known region keeps it).
      if (!m) (this.agentTargets.set(tk, (m = new Map())), (this.order = undefined));
      m.set(address, agent);
    } else {
      this.agentKeys.delete(k);
      m?.delete(address);
      if (m && !m.size) (this.agentTargets.delete(tk), (this.order = undefined));
    }
  }

  /**
   * An agent became known (`known`: its first heartbeat) or left (forgotten, or `goodbye`); call
   * from the registry's join and forget events. A goodbye is remembered for the grace time
   * (leftRecently), a join ends it.
   */
  agentChanged(a: MeshAgent & { alive?: boolean }, known: boolean, goodbye = false): void {
    if (this.discovery !== "dynamic") return;
    const id = peerKey(a.region, a.ip);
    for (const k of TargetPool.meshKeys(a)) this.adjust(k, known ? 1 : -1, goodbye, id);
    const regions = this.agentIpRegions.get(a.ip) ?? new Map<string, number>();
    const n = (regions.get(a.region) ?? 0) + (known ? 1 : -1);
    if (n > 0) regions.set(a.region, n);
    else regions.delete(a.region);
    if (regions.size) this.agentIpRegions.set(a.ip, regions);
    else this.agentIpRegions.delete(a.ip);
    if (!this.subsets) return this.changedRegion(a.region);
    const affected = known ? this.subsets.upsert(a.region, a.ip, a.alive ?? true) : this.subsets.remove(a.region, a.ip);
    // An agent's own region is not subsetted: with -server.probe.self its peers there change too.
    this.changedRegion(a.region, this.probeSelf ? undefined : affected);
    if (!known) this.agentStamps.delete(id);
  }

  /** A known agent went silent or came back (registry onChange): with subsets, who guarantees whom changes. */
  agentAlive(a: MeshAgent & { alive: boolean }): void {
    if (!this.subsets) return;
    const affected = this.subsets.upsert(a.region, a.ip, a.alive);
    if (!affected.size) return; // a version or ports change: who covers whom is the same
    const t = ++this.tick;
    for (const k of affected) this.agentStamps.set(k, t);
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
    const id = peerKey(next.region, next.ip);
    let changed = false;
    for (const k of before) if (!after.has(k)) (this.adjust(k, -1, true, id), (changed = true));
    for (const k of after) if (!before.has(k)) (this.adjust(k, 1, false, id), (changed = true));
    if (changed) this.changedRegion(next.region);
  }

  /** The current probe file. */
  get probeFile(): ProbeFile {
    return this.file;
  }

  /**
   * The pool for an agent of `sourceRegion`: `agentIp` (if given) is left out of the mesh targets
   * and, with peer subsets, only its peers are given of other regions' agents (without `agentIp`:
   * the region's whole pool, e.g. for /-/targets). With `redact`, module secrets are replaced by
   * it ("<secret>" for display, "" for an agent that may not have them). The result is a fresh
   * message the caller may change; its targets are shared and must not be.
   */
  poolFor(sourceRegion: string, agentIp = "", redact?: string): GetTargetPoolResponse {
    const out = create(GetTargetPoolResponseSchema, {});
    const layout = this.layout(redact ?? "\u0001", redact);
    forEachEntry(layout, this.select(layout, sourceRegion, agentIp), (type, e) => (out[type] as TargetOf<ProberType>[]).push(e.target));
    return out;
  }

  /**
   * The same pool for the binary protocol, its targets already encoded: every entry is encoded
   * once per layout and an answer copies runs of them (lib/server/pool_wire.ts).
   */
  poolWireFor(sourceRegion: string, agentIp = "", redact?: string): GetTargetPoolResponse {
    const layout = this.layout(redact ?? "\u0001", redact);
    layout.arena ??= buildArena(layout.items.map(({ type, seg }) => (seg.wire ??= segmentWire(type, seg.entries))), layout.size);
    return answerFrom(layout.arena, this.select(layout, sourceRegion, agentIp));
  }

  /**
   * The entries of the pool of an agent of `sourceRegion` (poolFor()), as runs of `layout`'s
   * indices (pool_layout.ts selectRuns()).
   */
  private select(layout: Layout, sourceRegion: string, agentIp: string): Int32Array {
    return selectRuns(layout, {
      sourceRegion, agentIp, probeSelf: this.probeSelf,
      agentRegions: (agentIp && this.agentIpRegions.get(agentIp)?.keys()) || [],
      peers: this.subsets && agentIp ? this.subsets.peersOf(sourceRegion, agentIp) : undefined,
      isAgentTcp: (t) => this.agentKeys.has(key("tcp", t.targetRegion, t.address)),
    });
  }

  /** Every segment of a redaction variant in pool order, and where each agent's entries are; kept until a segment changes. */
  private layout(variant: string, redact: string | undefined): Layout {
    const kept = this.layouts.get(variant);
    if (kept) return kept;
    const items: Layout["items"] = [];
    const order = (this.order ??= this.regionOrder());
    for (const { type, region } of order.merged) items.push({ type, region, seg: this.segment(variant, type, region, redact), first: 0 });
    for (const [i, b] of this.file.blocks.entries()) if (!(MERGED as readonly string[]).includes(b.proberType)) items.push({ type: b.proberType, region: b.region, seg: this.segment(variant, b.proberType, `${i}`, redact, b), first: 0 });
    for (const region of order.tcp) items.push({ type: "tcp", region, seg: this.segment(variant, "tcp", region, redact), first: 0 });
    const out = assembleLayout(items);
    this.layouts.set(variant, out);
    return out;
  }

  /** Target regions of the merged kinds (file blocks and agents) and of the tcp mesh, sorted. */
  private regionOrder(): { merged: { type: MeshMerged; region: string }[]; tcp: string[] } {
    const merged: { type: MeshMerged; region: string }[] = [];
    for (const type of MERGED) {
      const regions = new Set(this.file.blocks.filter((b) => b.proberType === type).map((b) => b.region));
      for (const tk of this.agentTargets.keys()) if (tk.startsWith(`${type}\u0000`)) regions.add(tk.slice(type.length + 1));
      for (const region of [...regions].sort((a, b) => a.localeCompare(b))) merged.push({ type, region });
    }
    const tcp = [...this.agentTargets.keys()].filter((tk) => tk.startsWith("tcp\u0000")).map((tk) => tk.slice(4)).sort((a, b) => a.localeCompare(b));
    return { merged, tcp };
  }

  /**
   * One segment: a merged kind's targets of `region` (the file's block merged with the region's
   * agents), the tcp mesh of `region` (agents' listeners the file does not list), or a file block
   * (`block`, region = its index). Cached per redaction variant.
   */
  private segment(variant: string, type: ProberType, region: string, redact: string | undefined, block?: ProbeBlock): Segment {
    const ck = `${variant}\u0000${type}\u0000${block ? `#${region}` : region}`;
    const cached = this.segments.get(ck);
    if (cached) return cached;
    const entries: Entry[] = [];
    // One segment has one module: redacted once, not per target (thousands of agents).
    let redacted: [unknown, unknown] | undefined;
    const add = <K extends ProberType>(k: K, targetRegion: string, address: string, module: ModuleOf<K>, agent?: string) => {
      const kind = PROBE_KINDS[k] as ProbeKind<K>;
      if (redact !== undefined && redacted?.[0] !== module) redacted = [module, kind.redactModule(module, redact)];
      const m = (redact === undefined ? module : redacted![1]) as ModuleOf<K>;
      entries.push({ target: kind.target(targetRegion, address, m), host: k === MESH_KIND ? address : (splitHostPortTarget(address)?.host ?? address), ...(agent ? { agent } : {}) });
    };
    const agents = this.agentTargets.get(`${type}\u0000${region}`);
    if (block) {
      for (const t of block.targets) add(block.proberType, block.region, t, block.module as ModuleOf<typeof block.proberType>);
    } else if (type === "tcp") {
      const listed = new Set(this.file.blocks.filter((b) => b.proberType === "tcp" && b.region === region).flatMap((b) => b.targets));
      const module = meshTcpModule();
      for (const [address, agent] of sorted(agents)) if (!listed.has(address)) add("tcp", region, address, module, agent);
    } else {
      const t = type as MeshMerged;
      const fileBlock = this.file.blocks.find((b) => b.proberType === t && b.region === region);
      const module = (fileBlock?.module ?? PROBE_KINDS[t].defaultModule()) as ModuleOf<MeshMerged>;
      const listed = new Set(fileBlock?.targets ?? []);
      for (const address of listed) add(t, region, address, module);
      for (const [address, agent] of sorted(agents)) if (!listed.has(address)) add(t, region, address, module, agent);
    }
    const seg = newSegment(entries);
    this.segments.set(ck, seg);
    return seg;
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

/** A region's agent targets in address order (every server lists them alike, whatever order it heard the agents in). */
const sorted = (m: Map<string, string> | undefined) => [...(m ?? [])].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));

/**
 * The registry events that keep a pool current: pools follow who is known, not who is alive (a
 * silent agent stays a target until forgotten), and with peer subsets who is alive decides who
 * covers whom. lib/server/server.ts calls these beside its metrics and logs.
 */
export function poolRegistryEvents(pool: () => TargetPool | undefined): Required<Pick<RegistryEvents, "onJoin" | "onChange" | "onForget">> {
  return {
    onJoin: (e) => pool()?.agentChanged(e, true),
    onChange: (e, prev) => {
      if (prev && portsDiffer(prev, e)) pool()?.agentPortsChanged(prev, e);
      pool()?.agentAlive(e);
    },
    onForget: (e, goodbye) => pool()?.agentChanged(e, false, goodbye),
  };
}
