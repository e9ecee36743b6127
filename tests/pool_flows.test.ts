/**
 * The flow mesh's discovery (lib/server/pool.ts, registry.ts): under dynamic discovery each agent
 * gets, next to the ICMP mesh, the other regions' agents' UDP responders (ip:udp_port) and TCP
 * listeners (ip:tcp_port, the mesh connect module), with the ports their heartbeats announce.
 * Registry and pool as the server wires them (registry events -> pool), then two compiled
 * servers sharing a real Redis (loopback only): the ports travel with the shared records.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { durationMs } from "@bufbuild/protobuf/wkt";
import { AgentSchema, GetTargetPoolResponseSchema } from "../lib/rpc/gen/probermesh/v1/probermesh_pb.ts";
import { MESH_TCP } from "../lib/probes/kinds.ts";
import { UDP_DEFAULTS } from "../lib/probes/udp/defaults.ts";
import { TargetPool, poolRegistryEvents } from "../lib/server/pool.ts";
import { AgentRegistry } from "../lib/server/registry.ts";
import { parseProbeFile } from "../lib/targets/config.ts";
import { SERVER_BIN, freePort, killAll, run, skipReason, start, waitFor } from "./helpers/procs.ts";

const DEAD_MS = 1000;

/** A registry and pool wired like lib/server/server.ts, on a fake clock. */
function mesh(fileText = "prober_configs: []\n", probeSelf = false, peers = 0) {
  let t = 1_000_000;
  let pool: TargetPool | undefined;
  const registry = new AgentRegistry(DEAD_MS, poolRegistryEvents(() => pool), () => t, undefined, 10 * DEAD_MS);
  pool = new TargetPool(parseProbeFile(fileText, "p.yaml"), "dynamic", probeSelf, registry, 60_000, () => t, peers);
  const hb = (region: string, ip: string, udpPort = 0, tcpPort = 0) => registry.heartbeat(create(AgentSchema, { region, ip, version: "0.6.0", udpPort, tcpPort }));
  const udp = (region: string, ip: string) => pool!.poolFor(region, ip).udp.map((x) => `${x.targetRegion}/${x.address}`).sort();
  const tcp = (region: string, ip: string) => pool!.poolFor(region, ip).tcp.map((x) => `${x.targetRegion}/${x.address}`).sort();
  return { registry, pool, hb, udp, tcp, advance: (ms: number) => (t += ms) };
}

describe("flow mesh discovery", () => {
  test("udp and tcp targets carry the ports from heartbeats; none for port 0; never the agent's own IP; assignment O(1) lookups agree", () => {
    const m = mesh();
    m.hb("a", "10.0.0.1", 7001, 7002);
    m.hb("b", "10.0.1.1", 7101, 0);
    m.hb("b", "2001:db8::5", 0, 7202);
    m.hb("c", "10.0.2.1"); // an agent before 0.6: no ports
    expect(m.udp("a", "10.0.0.1")).toEqual(["b/10.0.1.1:7101"]);
    expect(m.tcp("a", "10.0.0.1")).toEqual(["b/[2001:db8::5]:7202"]);
    expect(m.udp("b", "10.0.1.1")).toEqual(["a/10.0.0.1:7001"]);
    expect(m.tcp("c", "10.0.2.1")).toEqual(["a/10.0.0.1:7002", "b/[2001:db8::5]:7202"]);
    // The ICMP mesh is unchanged: every known agent's IP.
    expect(m.pool.poolFor("c", "10.0.2.1").icmp.map((x) => x.address).sort()).toEqual(["10.0.0.1", "10.0.1.1", "2001:db8::5"]);
    expect(m.pool.isAssigned("a", "udp", "b", "10.0.1.1:7101")).toBe(true);
    expect(m.pool.isAssigned("a", "udp", "b", "10.0.1.1:7102")).toBe(false);
    expect(m.pool.isAssigned("a", "tcp", "b", "[2001:db8::5]:7202")).toBe(true);
    expect(m.pool.isAssigned("b", "udp", "b", "10.0.1.1:7101")).toBe(false); // own region
    expect(m.pool.mayNameAnAgent("udp") && m.pool.mayNameAnAgent("tcp")).toBe(true);
  });

  test("modules: udp default (or the region's file block, whose targets are merged), tcp the mesh connect module", () => {
    const m = mesh("prober_configs:\n  - prober_type: udp\n    region: b\n    targets: ['192.0.2.7:9000']\n    udp: { flows: 4, dscp: 46 }\n");
    m.hb("a", "10.0.0.1", 7001, 7002);
    m.hb("b", "10.0.1.1", 7101, 7102);
    const p = m.pool.poolFor("a", "10.0.0.1");
    expect(p.udp.map((x) => x.address).sort()).toEqual(["10.0.1.1:7101", "192.0.2.7:9000"]);
    for (const x of p.udp) expect([x.module!.flows, x.module!.dscp]).toEqual([4, 46]);
    const q = m.pool.poolFor("b", "10.0.1.1");
    expect(q.udp[0]!.module!.flows).toBe(UDP_DEFAULTS.flows);
    expect(q.tcp[0]!.module!.flows).toBe(MESH_TCP.flows);
    expect(durationMs(q.tcp[0]!.module!.timeout!)).toBe(MESH_TCP.timeoutMs);
    // The file's fixed responder is assigned; a made-up one is not.
    expect(m.pool.isAssigned("a", "udp", "b", "192.0.2.7:9000")).toBe(true);
    expect(m.pool.isAssigned("a", "udp", "b", "192.0.2.8:9000")).toBe(false);
    // One udp block per region: its module is also the region's agents' module.
    expect(() => parseProbeFile("prober_configs:\n  - {prober_type: udp, region: b, targets: ['192.0.2.7:9000']}\n  - {prober_type: udp, region: b, targets: ['192.0.2.8:9000']}\n", "p.yaml")).toThrow(/duplicate block for region "b" and prober_type udp/);
  });

  test("a dead agent stays a target until forgotten; goodbye removes at once (leftRecently); a port change follows", () => {
    const m = mesh();
    m.hb("a", "10.0.0.1", 7001, 7002);
    m.hb("b", "10.0.1.1", 7101, 7102);
    m.hb("b", "10.0.1.2", 7101, 7102);
    m.advance(DEAD_MS + 1);
    m.hb("a", "10.0.0.1", 7001, 7002);
    m.registry.sweep();
    expect(m.registry.isLive("b", "10.0.1.1")).toBe(false);
    expect(m.udp("a", "10.0.0.1")).toEqual(["b/10.0.1.1:7101", "b/10.0.1.2:7101"]);
    expect(m.tcp("a", "10.0.0.1")).toEqual(["b/10.0.1.1:7102", "b/10.0.1.2:7102"]);
    // Goodbye: gone at once, and rounds in flight are "left", not unassigned.
    m.registry.goodbye("b", "10.0.1.2");
    expect(m.udp("a", "10.0.0.1")).toEqual(["b/10.0.1.1:7101"]);
    expect(m.pool.leftRecently("udp", "b", "10.0.1.2:7101")).toBe(true);
    expect(m.pool.leftRecently("tcp", "b", "10.0.1.2:7102")).toBe(true);
    // A port change (the agent restarted with other ports): the new address replaces the old one.
    const v = m.pool.version;
    m.hb("b", "10.0.1.1", 7111, 0);
    expect(m.pool.version).not.toBe(v);
    expect(m.udp("a", "10.0.0.1")).toEqual(["b/10.0.1.1:7111"]);
    expect(m.tcp("a", "10.0.0.1")).toEqual([]);
    expect(m.pool.isAssigned("a", "udp", "b", "10.0.1.1:7101")).toBe(false);
    expect(m.pool.leftRecently("udp", "b", "10.0.1.1:7101")).toBe(true);
    // Forgotten: gone.
    m.advance(11 * DEAD_MS + 2);
    m.hb("a", "10.0.0.1", 7001, 7002);
    m.registry.sweep(); // dead now,
    m.registry.sweep(); // and long enough: forgotten
    expect(m.udp("a", "10.0.0.1")).toEqual([]);
  });

  test("-server.probe.self: the own region's other agents, never the own IP; static discovery: the file only", () => {
    const m = mesh("prober_configs: []\n", true);
    m.hb("a", "10.0.0.1", 7001, 7002);
    m.hb("a", "10.0.0.2", 7001, 7002);
    expect(m.udp("a", "10.0.0.1")).toEqual(["a/10.0.0.2:7001"]);
    expect(m.tcp("a", "10.0.0.2")).toEqual(["a/10.0.0.1:7002"]);
    const registry = new AgentRegistry(DEAD_MS);
    registry.heartbeat(create(AgentSchema, { region: "b", ip: "10.0.1.1", udpPort: 7101, tcpPort: 7102 }));
    const staticPool = new TargetPool({ blocks: [] }, "static", false, registry);
    expect(staticPool.poolFor("a", "10.0.0.1").udp).toEqual([]);
    expect(staticPool.poolFor("a", "10.0.0.1").tcp).toEqual([]);
  });
});

describe("an agent's own IP", () => {
  test("the same IP in two regions (agents behind NAT in two networks) and in the file: left out of that agent's pool only, full mesh and subsets, binary and JSON alike", () => {
    for (const peers of [0, 2]) {
      const m = mesh("prober_configs:\n  - prober_type: icmp\n    region: c\n    targets: ['10.0.0.1', '192.0.2.9']\n", false, peers);
      m.hb("a", "10.0.0.1", 7001, 7002);
      m.hb("b", "10.0.0.1", 7001, 7002);
      m.hb("b", "10.0.1.2", 7001, 7002);
      m.hb("c", "10.0.2.1");
      const names = (p: ReturnType<TargetPool["poolFor"]>) => [...p.icmp, ...p.udp, ...p.tcp].map((x) => `${x.targetRegion}/${x.address}`).sort();
      const want = ["b/10.0.1.2", "b/10.0.1.2:7001", "b/10.0.1.2:7002", "c/10.0.2.1", "c/192.0.2.9"];
      expect({ peers, pool: names(m.pool.poolFor("a", "10.0.0.1")) }).toEqual({ peers, pool: want });
      expect({ peers, pool: names(fromBinary(GetTargetPoolResponseSchema, toBinary(GetTargetPoolResponseSchema, m.pool.poolWireFor("a", "10.0.0.1")))) }).toEqual({ peers, pool: want });
      // Another agent gets both agents with that IP, and the file's target of that address.
      expect(names(m.pool.poolFor("c", "10.0.2.1"))).toEqual(["a/10.0.0.1", "a/10.0.0.1:7001", "a/10.0.0.1:7002", "b/10.0.0.1", "b/10.0.0.1:7001", "b/10.0.0.1:7002", "b/10.0.1.2", "b/10.0.1.2:7001", "b/10.0.1.2:7002"]);
      // b's agent with that IP leaves: a's pool is the same, the other agents' lose it.
      m.registry.goodbye("b", "10.0.0.1");
      expect(names(m.pool.poolFor("a", "10.0.0.1"))).toEqual(want);
      expect(names(m.pool.poolFor("b", "10.0.1.2"))).toEqual(["a/10.0.0.1", "a/10.0.0.1:7001", "a/10.0.0.1:7002", "c/10.0.0.1", "c/10.0.2.1", "c/192.0.2.9"]);
    }
  });
});

const redisBin = Bun.which("redis-server");
if (!redisBin) skipReason("pool_flows.test.ts: the shared-registry test needs redis-server (apt-get install redis-server)");

describe.skipIf(!redisBin)("ports through a shared Redis registry (compiled servers)", () => {
  afterAll(killAll);
  test("an agent's ports heartbeated at one server make udp/tcp targets at the other; a port change follows", async () => {
    const redisPort = await freePort();
    start([redisBin!, "--port", String(redisPort), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]);
    await waitFor("redis ready", 10_000, async () => (await run(["redis-cli", "-p", String(redisPort), "ping"])).stdout.trim() === "PONG");
    const servers: { rpc: number }[] = [];
    for (let i = 0; i < 2; i++) {
      const [rpc, web] = [await freePort(), await freePort()];
      start([SERVER_BIN, "-server.rpc.listen.addr", `127.0.0.1:${rpc}`, "-server.http.listen.addr", `127.0.0.1:${web}`, "-server.registry.url", `redis://127.0.0.1:${redisPort}/0`]);
      await waitFor("server ready", 10_000, async () => (await fetch(`http://127.0.0.1:${web}/-/ready`).catch(() => undefined))?.ok);
      servers.push({ rpc });
    }
    const call = async (rpc: number, method: string, body: unknown) =>
      JSON.parse((await run(["curl", "-sS", "-H", "Content-Type: application/json", "--data-binary", JSON.stringify(body), `http://127.0.0.1:${rpc}/probermesh.v1.ProberMeshService/${method}`])).stdout || "{}") as Record<string, { address: string }[] | undefined>;
    const [a, b] = servers as [{ rpc: number }, { rpc: number }];
    await call(a.rpc, "Heartbeat", { agent: { region: "p", ip: "127.0.64.1", version: "0.6.0", udpPort: 7301, tcpPort: 7302 } });
    await call(b.rpc, "Heartbeat", { agent: { region: "q", ip: "127.0.64.2", version: "0.6.0" } });
    const poolAtB = async () => call(b.rpc, "GetTargetPool", { agent: { region: "q", ip: "127.0.64.2" } });
    const addrs = (l: { address: string }[] | undefined) => (l ?? []).map((x) => x.address);
    const seen = await waitFor("p's responders known at server b", 10_000, async () => { const p = await poolAtB(); return addrs(p.udp).length ? p : undefined; });
    expect(addrs(seen.udp)).toEqual(["127.0.64.1:7301"]);
    expect(addrs(seen.tcp)).toEqual(["127.0.64.1:7302"]);
    await call(a.rpc, "Heartbeat", { agent: { region: "p", ip: "127.0.64.1", version: "0.6.0", udpPort: 7311 } });
    const moved = await waitFor("the new port at server b", 10_000, async () => { const p = await poolAtB(); return addrs(p.udp)[0] === "127.0.64.1:7311" ? p : undefined; });
    expect(addrs(moved.tcp)).toEqual([]);
  }, 30_000);
});
