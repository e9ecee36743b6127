/**
 * Pools under peer subsets (-server.mesh.peers.per.region, lib/server/pool.ts + peers.ts), wired
 * to a registry as the server wires them: one agent set for every mesh kind, file targets whole,
 * pool versions that change only for the agents whose peers changed, the same pools on two
 * servers that heard the agents in another order, and silent agents kept as targets but not as
 * the ones who cover others.
 */
import { describe, expect, test } from "bun:test";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { AgentSchema, GetTargetPoolResponseSchema } from "../lib/rpc/gen/probermesh/v1/probermesh_pb.ts";
import { PeerSubsets, peerKey } from "../lib/server/peers.ts";
import { TargetPool, poolRegistryEvents } from "../lib/server/pool.ts";
import { AgentRegistry } from "../lib/server/registry.ts";
import { parseProbeFile } from "../lib/targets/config.ts";

const DEAD_MS = 1000;

function server(peers: number, fileText = "prober_configs: []\n", probeSelf = false) {
  let t = 1_000_000;
  let pool: TargetPool | undefined;
  const registry = new AgentRegistry(DEAD_MS, poolRegistryEvents(() => pool), () => t, undefined, 100 * DEAD_MS);
  pool = new TargetPool(parseProbeFile(fileText, "p.yaml"), "dynamic", probeSelf, registry, 60_000, () => t, peers);
  const hb = (region: string, ip: string) => registry.heartbeat(create(AgentSchema, { region, ip, version: "0.8.0", udpPort: 7001, tcpPort: 7002 }));
  return { registry, pool, hb, advance: (ms: number) => (t += ms) };
}

/** 4 regions of 2..7 agents. */
const AGENTS = ["a", "b", "c", "d"].flatMap((r, i) => Array.from({ length: 2 + i + (i === 3 ? 2 : 0) }, (_, j) => ({ region: r, ip: `10.${i}.0.${j + 1}` })));
const hostOf = (address: string) => address.replace(/:\d+$/, "");
const peersIn = (p: ReturnType<TargetPool["poolFor"]>, kind: "icmp" | "udp" | "tcp") => p[kind].map((x) => `${x.targetRegion}/${hostOf(x.address)}`).sort();

describe("pools with peer subsets", () => {
  test("every mesh kind gets the same peers, the rendezvous choice; file targets are not subsetted; never the agent itself", () => {
    const s = server(1, "prober_configs:\n  - prober_type: icmp\n    region: b\n    targets: ['192.0.2.9']\n");
    for (const a of AGENTS) s.hb(a.region, a.ip);
    const ref = new PeerSubsets(1);
    for (const a of AGENTS) ref.upsert(a.region, a.ip, true);
    for (const a of AGENTS) {
      const p = s.pool.poolFor(a.region, a.ip);
      const want = [...ref.peersOf(a.region, a.ip)].map((k) => k.replace("\u0000", "/")).sort();
      expect(peersIn(p, "udp")).toEqual(want);
      expect(peersIn(p, "tcp")).toEqual(want);
      const file = a.region === "b" ? [] : ["b/192.0.2.9"];
      expect(peersIn(p, "icmp")).toEqual([...want, ...file].sort());
      expect(want.some((w) => w.endsWith(`/${a.ip}`))).toBe(false);
      // At least one agent of each other region, never more than it has.
      for (const r of ["a", "b", "c", "d"].filter((r) => r !== a.region)) expect(want.filter((w) => w.startsWith(`${r}/`)).length).toBeGreaterThanOrEqual(1);
    }
    // Smaller than the full mesh (d has 7 agents, N = 1).
    const full = server(0);
    for (const a of AGENTS) full.hb(a.region, a.ip);
    expect(full.pool.poolFor("a", "10.0.0.1").udp.length).toBe(AGENTS.length - 2);
    expect(s.pool.poolFor("a", "10.0.0.1").udp.length).toBeLessThan(AGENTS.length - 2);
    // /-/targets' view (no agent): the region's whole candidate set.
    expect(s.pool.poolFor("a").udp.length).toBe(AGENTS.length - 2);
  });

  test("with -server.probe.self: the own region whole, other regions' agents only the peers (once each), file targets whole", () => {
    // Region b's file block lists a target and one of b's agents: its segment has both kinds of entry.
    const s = server(1, "prober_configs:\n  - prober_type: icmp\n    region: b\n    targets: ['192.0.2.9', '10.1.0.1']\n", true);
    for (const a of AGENTS) s.hb(a.region, a.ip);
    const ref = new PeerSubsets(1);
    for (const a of AGENTS) ref.upsert(a.region, a.ip, true);
    for (const a of AGENTS) {
      const p = s.pool.poolFor(a.region, a.ip);
      const own = AGENTS.filter((o) => o.region === a.region && o.ip !== a.ip).map((o) => `${o.region}/${o.ip}`);
      const peers = [...ref.peersOf(a.region, a.ip)].map((k) => k.replace("\u0000", "/"));
      expect(peersIn(p, "udp")).toEqual([...own, ...peers].sort());
      const file = a.region === "b" && a.ip === "10.1.0.1" ? ["b/192.0.2.9"] : ["b/10.1.0.1", "b/192.0.2.9"];
      expect(peersIn(p, "icmp")).toEqual([...new Set([...own, ...peers, ...file])].sort());
      // The binary answer holds the same targets.
      const wire = fromBinary(GetTargetPoolResponseSchema, toBinary(GetTargetPoolResponseSchema, s.pool.poolWireFor(a.region, a.ip)));
      expect(peersIn(wire, "icmp")).toEqual(peersIn(p, "icmp"));
    }
  });

  test("a join changes the pool version of the agents whose peers changed, and only theirs; the full mesh changes everyone's", () => {
    const s = server(1);
    for (const a of AGENTS) s.hb(a.region, a.ip);
    const peersOf = () => new Map(AGENTS.map((a) => [peerKey(a.region, a.ip), JSON.stringify(s.pool.poolFor(a.region, a.ip).udp.map((x) => x.address))]));
    const versions = () => new Map(AGENTS.map((a) => [peerKey(a.region, a.ip), s.pool.versionFor(a.region, a.ip)]));
    let changedSomewhere = 0, unchangedSomewhere = 0;
    for (const [region, ip] of [["d", "10.3.0.99"], ["a", "10.0.0.99"], ["b", "10.1.0.99"]] as const) {
      const p0 = peersOf(), v0 = versions();
      s.hb(region, ip);
      const p1 = peersOf(), v1 = versions();
      for (const [k, v] of v1) {
        expect(v !== v0.get(k), `${k}: pool changed ${p0.get(k) !== p1.get(k)}, version changed ${v !== v0.get(k)}`).toBe(p0.get(k) !== p1.get(k));
        if (v !== v0.get(k)) changedSomewhere++;
        else unchangedSomewhere++;
      }
    }
    expect(changedSomewhere).toBeGreaterThan(0);
    expect(unchangedSomewhere).toBeGreaterThan(0);
    const full = server(0);
    for (const a of AGENTS) full.hb(a.region, a.ip);
    const before = AGENTS.map((a) => full.pool.versionFor(a.region, a.ip));
    full.hb("d", "10.3.0.99");
    AGENTS.forEach((a, i) => expect(full.pool.versionFor(a.region, a.ip)).not.toBe(before[i]!));
  });

  test("two servers that heard the agents in different orders hand out the same pools", () => {
    const one = server(2), two = server(2);
    for (const a of AGENTS) one.hb(a.region, a.ip);
    for (const a of [...AGENTS].reverse()) two.hb(a.region, a.ip);
    for (const a of AGENTS) expect(two.pool.poolFor(a.region, a.ip)).toEqual(one.pool.poolFor(a.region, a.ip));
  });

  test("a silent agent stays a target; the agents it covered are covered by a live agent of its region", () => {
    const s = server(1);
    for (const a of AGENTS) s.hb(a.region, a.ip);
    // Everyone but a's second agent keeps heartbeating past the dead-after time.
    const silent = AGENTS.find((a) => a.region === "a" && a.ip === "10.0.0.2")!;
    s.advance(DEAD_MS + 1);
    for (const a of AGENTS) if (a !== silent) s.hb(a.region, a.ip);
    s.registry.sweep();
    expect(s.registry.isLive(silent.region, silent.ip)).toBe(false);
    const probers = (t: { region: string; ip: string }) => AGENTS.filter((a) => a.region === "a" && a !== silent && s.pool.poolFor(a.region, a.ip).udp.some((x) => x.address.startsWith(`${t.ip}:`)));
    for (const t of AGENTS.filter((x) => x.region !== "a")) expect(probers(t).length, `${t.region}/${t.ip} from a`).toBeGreaterThanOrEqual(1);
    // ... and the others still probe the silent one (a cut agent reads red, not missing).
    const probedBy = AGENTS.filter((a) => a.region !== "a" && s.pool.poolFor(a.region, a.ip).udp.some((x) => x.address.startsWith(`${silent.ip}:`)));
    expect(probedBy.map((a) => a.region).sort()).toEqual(expect.arrayContaining(["b", "c", "d"]));
  });

  test("the binary answer (targets encoded once and kept) decodes to the same pool, for every agent, with and without secrets, full mesh or subsets", () => {
    const file = "prober_configs:\n  - prober_type: icmp\n    region: b\n    targets: ['192.0.2.9']\n  - prober_type: http\n    region: c\n    targets: ['http://192.0.2.10/']\n    http: { bearer_token: s3cret }\n";
    for (const peers of [0, 1]) {
      const s = server(peers, file);
      for (const a of AGENTS) s.hb(a.region, a.ip);
      for (const round of [1, 2]) {
        for (const a of AGENTS) {
          for (const redact of [undefined, ""]) {
            const wire = fromBinary(GetTargetPoolResponseSchema, toBinary(GetTargetPoolResponseSchema, s.pool.poolWireFor(a.region, a.ip, redact)));
            const plain = s.pool.poolFor(a.region, a.ip, redact);
            expect(wire, `${a.region}/${a.ip} peers ${peers} redact ${redact} round ${round}`).toEqual(fromBinary(GetTargetPoolResponseSchema, toBinary(GetTargetPoolResponseSchema, plain)));
            expect(wire.icmp.length + wire.udp.length + wire.tcp.length).toBeGreaterThan(0);
          }
        }
        s.hb("d", "10.3.0.77"); // the second round after a join: cached entries and new ones together
      }
    }
  });
});
