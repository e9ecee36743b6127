/**
 * Paris traceroute of one flow (lib/probes/flow/trace.ts) on real packets through real routers:
 * the namespace line agent → r1 → r2 → target (tests/helpers/pathbed.ts), a udp responder (a
 * test-side one on udp/packet.ts) and a TCP listener in the target, the tracer in a child process
 * inside the agent namespace. Then an nftables rule on r2 drops the packets of ONE source port
 * (a bad bundle member that only some 5-tuples hash onto): that flow's trace ends at r1 while
 * another port's still reaches the target.
 *
 * The drop is in r2's prerouting hook, not forward: Linux checks the TTL (and sends Time
 * Exceeded) before the forward hook, so a forward-chain drop would still let r2 answer TTL 2.
 * A prerouting drop is a link that eats the packets before r2 sees them.
 *
 * Plus checks without root: the checksums of the crafted packets, IPv6 and no mesh key refused,
 * and the path store keeping a flow trace next to the ICMP trace of the same target.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { create } from "@bufbuild/protobuf";
import { PathTraceSchema } from "../lib/rpc/gen/probermesh/v1/probermesh_pb.ts";
import type { TraceOutcome } from "../lib/probes/icmp/trace.ts";
import { internetChecksum, parseIpv4, tcpSynPacket, udpPacket } from "../lib/probes/flow/headers.ts";
import { FlowTracer, IPV4_ONLY } from "../lib/probes/flow/trace.ts";
import { PathStore } from "../lib/server/paths.ts";
import { createPathBed, type PathBed } from "./helpers/pathbed.ts";
import { netnsAvailable } from "./helpers/netns.ts";
import { nft, nftInstalled } from "./helpers/nft.ts";
import { IS_ROOT, ROOT, run, skipReason } from "./helpers/procs.ts";

const CAN = (await netnsAvailable()) && nftInstalled();
if (!CAN) skipReason("flow_trace.test.ts needs root, iproute2 and nft: it builds a line of four namespaces with two forwarding routers and drops one source port on r2");

const UDP_PORT = 47510;
const TCP_PORT = 47511;
const KEY_HEX = "11".repeat(32);
const OPTS = { probes: 3, probeIntervalMs: 50, timeoutMs: 500, maxHops: 8 };

describe("crafted packets and refusals (no root)", () => {
  const ip = { src: Uint8Array.of(10, 0, 0, 1), dst: Uint8Array.of(10, 0, 0, 2), ttl: 3, id: 77, tos: 0 };
  const pseudo = (proto: number, len: number) => Uint8Array.of(10, 0, 0, 1, 10, 0, 0, 2, 0, proto, len >> 8, len & 0xff);

  test("udp probe: the flow's ports, TTL and IP ID in the header; IP and UDP checksums verify (RFC 768 pseudo-header)", () => {
    const p = udpPacket(ip, 40100, 7, new Uint8Array(56).fill(3));
    expect(internetChecksum(p.subarray(0, 20))).toBe(0);
    expect(internetChecksum(pseudo(17, p.length - 20), p.subarray(20))).toBe(0);
    const q = parseIpv4(p, 0, p.length)!;
    expect([q.proto, q.sport, q.dport, q.id, p[8]]).toEqual([17, 40100, 7, 77, 3]);
  });

  test("tcp probe: a SYN whose sequence number is the probe index, checksum verifies", () => {
    const p = tcpSynPacket(ip, 40200, 80, 12);
    expect(internetChecksum(pseudo(6, 20), p.subarray(20))).toBe(0);
    const q = parseIpv4(p, 0, p.length)!;
    expect([q.proto, q.sport, q.dport, q.word1, p[33]]).toEqual([6, 40200, 80, 12, 0x02]);
  });

  test("IPv6 and a udp trace without the mesh key resolve with an error, sending nothing", async () => {
    const t = new FlowTracer(() => undefined);
    try {
      expect(await t.trace({ kind: "tcp", ip: "::1", sourcePort: 40100, destinationPort: 7 })).toEqual({ hops: [], reached: false, error: IPV4_ONLY });
      expect((await t.trace({ kind: "udp", ip: "127.0.0.1", sourcePort: 40100, destinationPort: 7 })).error).toContain("no mesh key");
    } finally {
      t.close();
    }
  });

  test("without CAP_NET_RAW: status() says flow traces are disabled and why, a trace resolves with that error", async () => {
    // Root drops to nobody with no capabilities (setpriv); anyone else lacks CAP_NET_RAW already.
    const prefix = IS_ROOT ? ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all"] : [];
    const script = `
      import { FlowTracer } from "${ROOT}lib/probes/flow/trace.ts";
      const t = new FlowTracer(() => new Uint8Array(32));
      console.log(JSON.stringify(t.status()));
      console.log(JSON.stringify(await t.trace({ kind: "tcp", ip: "127.0.0.1", sourcePort: 40100, destinationPort: 9 }, { probes: 1, maxHops: 2, probeIntervalMs: 10, timeoutMs: 10 })));
      t.close();
    `;
    const r = await run([...prefix, process.execPath, "-e", script]);
    expect(r.stderr).toBe("");
    const [status, outcome] = r.stdout.trim().split("\n").map((l) => JSON.parse(l));
    expect(status.ready).toBe(false);
    expect(status.message).toContain("CAP_NET_RAW");
    expect([outcome.hops, outcome.reached]).toEqual([[], false]);
    expect(outcome.error).toContain("CAP_NET_RAW");
  });

  test("path store: a flow trace and the ICMP trace of one target are both kept, one per kind and source port", () => {
    const s = new PathStore(1);
    const add = (kind: string, sourcePort: number) => s.add({ sourceRegion: "a", agentIp: "10.0.0.1", trace: create(PathTraceSchema, { targetRegion: "b", address: "10.0.0.2:7", kind, sourcePort }) });
    add("", 0);
    add("udp", 40100);
    add("udp", 40101);
    add("tcp", 40100);
    add("udp", 40100);
    expect(s.size).toBe(4);
    expect(s.list("a", "b").map((p) => `${p.trace.kind || "icmp"}/${p.trace.sourcePort}`).sort()).toEqual(["icmp/0", "tcp/40100", "udp/40100", "udp/40101"]);
  });
});

describe.skipIf(!CAN)("flow traces through two routers", () => {
  let bed: PathBed;
  let servers: Bun.Subprocess<"ignore", "pipe", "inherit"> | undefined;

  beforeAll(async () => {
    bed = await createPathBed("ftr");
    // The target's udp responder (udp/packet.ts: verify the tag, answer with the reply) and TCP listener.
    const script = `
      import dgram from "node:dgram";
      import net from "node:net";
      import { parseProbe, toReply, TYPE_REQUEST } from "${ROOT}lib/probes/udp/packet.ts";
      const key = Buffer.from("${KEY_HEX}", "hex");
      const u = dgram.createSocket("udp4");
      // Our kernel answers a reply to an unbound source port with Port Unreachable: not an error here.
      u.on("error", () => {});
      u.on("message", (m, r) => {
        const b = new Uint8Array(m);
        const p = parseProbe(b, b.length, [key]);
        if (!p || p.header.type !== TYPE_REQUEST) return;
        const now = BigInt(Date.now()) * 1000000n;
        toReply(b, key, now, now);
        u.send(b, r.port, r.address);
      });
      u.bind(${UDP_PORT}, () => net.createServer((c) => c.on("error", () => {})).listen(${TCP_PORT}, () => console.log("ready")));
    `;
    servers = Bun.spawn(["ip", "netns", "exec", bed.target, process.execPath, "-e", script], { stdin: "ignore", stdout: "pipe", stderr: "inherit", cwd: ROOT });
    const reader = servers.stdout.getReader();
    let seen = "";
    while (!seen.includes("ready")) {
      const { value, done } = await reader.read();
      if (done) throw new Error("the responder in the target namespace exited");
      seen += new TextDecoder().decode(value);
    }
    reader.releaseLock();
  }, 30_000);

  afterAll(async () => {
    if (servers) {
      servers.kill();
      await servers.exited;
    }
    await bed?.remove();
  });

  /** Traces the flows (kind, source port) at once from the agent namespace. */
  const trace = async (...flows: ["udp" | "tcp", number][]): Promise<TraceOutcome[]> => {
    const script = `
      import { readdirSync } from "node:fs";
      import { FlowTracer } from "${ROOT}lib/probes/flow/trace.ts";
      const fds = () => readdirSync("/proc/self/fd").length;
      const before = fds();
      const t = new FlowTracer(() => Buffer.from("${KEY_HEX}", "hex"));
      const flows = ${JSON.stringify(flows)};
      const out = await Promise.all(flows.map(([kind, sp]) => t.trace({ kind, ip: "${bed.targetIp}", sourcePort: sp, destinationPort: kind === "udp" ? ${UDP_PORT} : ${TCP_PORT} }, ${JSON.stringify(OPTS)})));
      t.close();
      for (const o of out) console.log(JSON.stringify(o));
      console.log(JSON.stringify({ fdsBefore: before, fdsAfter: fds() }));
    `;
    const r = await run([...bed.inAgent, process.execPath, "-e", script]);
    expect(r.stderr).toBe("");
    const lines = r.stdout.trim().split("\n").map((l) => JSON.parse(l));
    // Every raw socket is closed when its trace resolves, the ICMP one at close().
    const fds = lines.pop();
    expect(fds.fdsAfter).toBe(fds.fdsBefore);
    return lines;
  };

  test("udp and tcp flows: r1, r2, then the target answers every probe (responder reply / SYN-ACK): reached", async () => {
    const [udp, tcp] = await trace(["udp", 40100], ["tcp", 40200]);
    for (const o of [udp!, tcp!]) {
      expect([o.reached, o.error]).toEqual([true, ""]);
      expect(o.hops.map((h) => [h.ttl, h.address, h.sent, h.received])).toEqual([
        [1, bed.r1Ip, OPTS.probes, OPTS.probes], [2, bed.r2Ip, OPTS.probes, OPTS.probes], [3, bed.targetIp, OPTS.probes, OPTS.probes],
      ]);
      for (const h of o.hops) for (const rtt of h.rttsSeconds) expect(rtt).toBeGreaterThan(0);
    }
  });

  test("r2 drops one source port: that flow's trace ends at r1 (not reached), the neighbour port's still reaches the target", async () => {
    await nft(bed.r2, [
      "table inet pmflowtrace {",
      "  chain pre { type filter hook prerouting priority 0; policy accept;",
      "    udp sport 40101 drop",
      "    tcp sport 40201 drop",
      "  }",
      "}",
    ].join("\n"));
    try {
      const [udpBad, udpGood, tcpBad, tcpGood] = await trace(["udp", 40101], ["udp", 40102], ["tcp", 40201], ["tcp", 40202]);
      for (const bad of [udpBad!, tcpBad!]) {
        expect([bad.reached, bad.error]).toEqual([false, ""]);
        expect(bad.hops.map((h) => [h.ttl, h.address, h.sent, h.received])).toEqual([[1, bed.r1Ip, OPTS.probes, OPTS.probes], [2, "", OPTS.probes, 0]]);
      }
      for (const good of [udpGood!, tcpGood!]) {
        expect(good.reached).toBe(true);
        expect(good.hops.map((h) => h.address)).toEqual([bed.r1Ip, bed.r2Ip, bed.targetIp]);
      }
    } finally {
      await nft(bed.r2, "delete table inet pmflowtrace");
    }
  });

  test("agent: requestFlow traces the flow once per interval per key and delivers a PathTrace with kind, ports, reason and target", async () => {
    const script = `
      import { toJson } from "@bufbuild/protobuf";
      import pino from "pino";
      import { Tracing } from "${ROOT}lib/agent/tracing.ts";
      import { PathTraceSchema } from "${ROOT}lib/rpc/gen/probermesh/v1/probermesh_pb.ts";
      const got = [];
      const tr = new Tracing({ intervalMs: 60000, ...${JSON.stringify(OPTS)} }, pino({ level: "silent" }), (t) => got.push(t), () => Buffer.from("${KEY_HEX}", "hex"));
      const f = { kind: "udp", targetRegion: "far", address: "${bed.targetIp}:${UDP_PORT}", ip: "${bed.targetIp}", sourcePort: 40103, destinationPort: ${UDP_PORT}, reason: "flow_lossy" };
      tr.requestFlow("far/40103", f);
      tr.requestFlow("far/40103", f);
      while (got.length === 0) await Bun.sleep(20);
      await Bun.sleep(300);
      tr.close();
      for (const t of got) console.log(JSON.stringify(toJson(PathTraceSchema, t)));
    `;
    const r = await run([...bed.inAgent, process.execPath, "-e", script]);
    expect(r.stderr).toBe("");
    const lines = r.stdout.trim().split("\n").map((l) => JSON.parse(l));
    expect(lines.length).toBe(1);
    const t = lines[0];
    expect([t.kind, t.sourcePort, t.destinationPort, t.reason, t.targetRegion, t.address, t.resolvedIp, t.reached])
      .toEqual(["udp", 40103, UDP_PORT, "flow_lossy", "far", `${bed.targetIp}:${UDP_PORT}`, bed.targetIp, true]);
    expect(t.hops.map((h: { address: string }) => h.address)).toEqual([bed.r1Ip, bed.r2Ip, bed.targetIp]);
  });
});
