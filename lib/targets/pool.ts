/**
 * Target pools: what each source region must probe (SPEC.md "RPC semantics").
 *
 * - static discovery: ICMP targets come from the probe file only.
 * - dynamic discovery: per target region, the file's ICMP targets merged (union, de-duplicated)
 *   with the IPs of that region's live agents. (ProberMesh replaced the file's list; we merge.)
 * - a region never gets its own targets unless -server.probe.self; an agent never gets its own IP.
 */
import { create } from "@bufbuild/protobuf";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import {
  GetTargetPoolResponseSchema, HttpModuleSchema, IcmpModuleSchema,
  type GetTargetPoolResponse, type HttpModule, type IcmpModule,
} from "../rpc/gen/probermesh/v1/probermesh_pb.ts";
import type { AgentRegistry } from "../server/registry.ts";
import { ICMP_DEFAULTS, type IcmpModuleConfig, type ProbeFile } from "./config.ts";
import { httpModuleProto } from "./http_module.ts";

/** ICMP target discovery mode (-server.icmp.discovery). */
export type Discovery = "static" | "dynamic";

/** Converts a config ICMP module into its protobuf form. */
export function icmpModuleProto(m: IcmpModuleConfig): IcmpModule {
  return create(IcmpModuleSchema, { packetCount: m.packetCount, interval: durationFromMs(m.intervalMs), payloadSize: m.payloadSize, timeout: durationFromMs(m.timeoutMs) });
}

/** Builds pools from the current probe file and the live agents. */
export class TargetPool {
  private cache = new Map<string, { gen: string; keys: Set<string> }>();
  private fileGeneration = 0;

  constructor(private file: ProbeFile, private readonly discovery: Discovery, private readonly probeSelf: boolean, private readonly registry: AgentRegistry) {}

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
   */
  poolFor(sourceRegion: string, agentIp = ""): GetTargetPoolResponse {
    const pool = create(GetTargetPoolResponseSchema, {});
    const wanted = (region: string) => this.probeSelf || region !== sourceRegion;
    const icmpByRegion = new Map<string, { module: IcmpModuleConfig; targets: Set<string> }>();
    for (const b of this.file.blocks) {
      if (!wanted(b.region)) continue;
      if (b.proberType === "icmp") icmpByRegion.set(b.region, { module: b.icmp, targets: new Set(b.targets) });
      else for (const url of b.targets) pool.http.push({ $typeName: "probermesh.v1.HttpTarget", targetRegion: b.region, url, module: httpModuleProto(b.http) });
    }
    if (this.discovery === "dynamic") {
      for (const a of this.registry.live()) {
        if (!wanted(a.region)) continue;
        let entry = icmpByRegion.get(a.region);
        if (!entry) icmpByRegion.set(a.region, (entry = { module: { ...ICMP_DEFAULTS }, targets: new Set() }));
        entry.targets.add(a.ip);
      }
    }
    for (const [region, { module, targets }] of [...icmpByRegion].sort(([a], [b]) => a.localeCompare(b))) {
      const mod = icmpModuleProto(module);
      for (const address of targets) {
        if (address === agentIp) continue;
        pool.icmp.push({ $typeName: "probermesh.v1.IcmpTarget", targetRegion: region, address, module: mod });
      }
    }
    return pool;
  }

  /** True when `target` of `targetRegion` is in `sourceRegion`'s pool (push validation). */
  isAssigned(sourceRegion: string, type: "icmp" | "http", targetRegion: string, target: string): boolean {
    const gen = `${this.fileGeneration}/${this.registry.generation}`;
    let c = this.cache.get(sourceRegion);
    if (!c || c.gen !== gen) {
      const p = this.poolFor(sourceRegion);
      const keys = new Set<string>();
      for (const t of p.icmp) keys.add(`icmp\u0000${t.targetRegion}\u0000${t.address}`);
      for (const t of p.http) keys.add(`http\u0000${t.targetRegion}\u0000${t.url}`);
      c = { gen, keys };
      this.cache.set(sourceRegion, c);
    }
    return c.keys.has(`${type}\u0000${targetRegion}\u0000${target}`);
  }
}
