/**
 * The agent's flow mesh listeners through the compiled binaries (`bun run scripts/build.ts`):
 * dist/agent with -agent.udp.listen.port / -agent.tcp.listen.port against a dist/server given
 * -server.mesh.key.file (so the test knows the key the agent receives). The agent announces its
 * ports (/api/v1/agents); its responder answers a probe tagged with the server's key and nothing
 * tagged with another; its TCP listener accepts and closes at once, sending nothing; a second
 * agent whose ports are taken announces 0 and keeps running; a bad -agent.udp.flow.ports exits
 * with a message naming the flag. And which flows of a round the agent asks the tracer for.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { mkdtempSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { parseProbe, writeRequest, TYPE_REPLY } from "../lib/probes/udp/packet.ts";
import { UdpSocket } from "../lib/probes/udp/socket.ts";
import { create } from "@bufbuild/protobuf";
import { flowTraceRequests } from "../lib/agent/flow_traces.ts";
import { FlowStatsSchema } from "../lib/rpc/gen/probermesh/v1/flow_pb.ts";
import { TcpResultSchema } from "../lib/rpc/gen/probermesh/v1/tcp_pb.ts";
import { UdpResultSchema } from "../lib/rpc/gen/probermesh/v1/udp_pb.ts";
import { AGENT_BIN, SERVER_BIN, freePort, killAll, run, start, waitFor, type Proc } from "./helpers/procs.ts";

afterAll(killAll);
const sockets: UdpSocket[] = [];
afterAll(() => sockets.forEach((s) => s.close()));

const dir = mkdtempSync(`${tmpdir()}/pm-listeners-`);
const keyFile = `${dir}/mesh.key`;
writeFileSync(keyFile, "a long random secret for the test\n");
const KEY = new Uint8Array(createHash("sha256").update("a long random secret for the test\n").digest());

interface AgentRow { ip: string; udp_port: number; tcp_port: number }

async function agentsOf(web: number): Promise<AgentRow[]> {
  return ((await (await fetch(`http://127.0.0.1:${web}/api/v1/agents`)).json()) as { agents: AgentRow[] }).agents;
}

/** Sends one probe tagged with `key` to 127.0.0.1:port; resolves with the verified reply's sequence, or null after `ms`. */
async function probeOnce(port: number, key: Uint8Array, sequence: number, ms = 400): Promise<number | null> {
  const s = new UdpSocket(0);
  sockets.push(s);
  const req = new Uint8Array(80);
  writeRequest(req, key, { dscp: 0, flags: 0, nonce: 1n, sequence });
  s.send(req, req.length, s.sockaddr("127.0.0.1", port));
  const end = Date.now() + ms;
  let got: number | null = null;
  while (Date.now() < end && got === null) {
    await Bun.sleep(10);
    s.drain((d) => {
      const p = parseProbe(d.buf.subarray(d.offset, d.offset + d.len), d.len, [KEY]);
      if (p && p.header.type === TYPE_REPLY && d.len === 80) got = p.header.sequence;
    });
  }
  s.close();
  return got;
}

describe("agent listeners (dist/agent, dist/server)", () => {
  let web = 0;
  let rpc = 0;
  let udp = 0;
  let tcp = 0;
  let agent: Proc;

  test("the agent announces its responder and listener ports", async () => {
    rpc = await freePort();
    web = await freePort();
    [udp, tcp] = [await freePort(), await freePort()];
    start([SERVER_BIN, "-server.rpc.listen.addr", `127.0.0.1:${rpc}`, "-server.http.listen.addr", `127.0.0.1:${web}`, "-server.mesh.key.file", keyFile]);
    await waitFor("server ready", 10_000, async () => (await fetch(`http://127.0.0.1:${web}/-/ready`).catch(() => undefined))?.ok);
    agent = start([AGENT_BIN, "-region", "a", "-agent.ip", "127.0.0.1", "-server.rpc.addr", `127.0.0.1:${rpc}`, "-agent.udp.listen.port", String(udp), "-agent.tcp.listen.port", String(tcp)]);
    const row = await waitFor("agent registered", 10_000, async () => (await agentsOf(web)).find((a) => a.ip === "127.0.0.1"));
    expect(row.udp_port).toBe(udp);
    expect(row.tcp_port).toBe(tcp);
  });

  test("the responder answers the server's key and ignores another", async () => {
    expect(await waitFor("a reply under the mesh key", 5000, () => probeOnce(udp, KEY, 1234))).toBe(1234);
    expect(await probeOnce(udp, new Uint8Array(32).fill(1), 99)).toBeNull();
    expect(agent.proc.exitCode).toBeNull();
  });

  test("the TCP listener accepts and closes without sending anything", async () => {
    const outcome = await new Promise<{ connected: boolean; bytes: number }>((resolve) => {
      let connected = false;
      let bytes = 0;
      const c = connect({ host: "127.0.0.1", port: tcp });
      c.on("connect", () => (connected = true));
      c.on("data", (d) => (bytes += d.length));
      c.on("close", () => resolve({ connected, bytes }));
      c.on("error", () => {});
      setTimeout(() => c.destroy(), 3000);
    });
    expect(outcome).toEqual({ connected: true, bytes: 0 });
  });

  test("ports taken: a second agent announces 0, warns, and keeps running", async () => {
    const second = start([AGENT_BIN, "-region", "b", "-agent.ip", "127.0.0.2", "-server.rpc.addr", `127.0.0.1:${rpc}`, "-agent.udp.listen.port", String(udp), "-agent.tcp.listen.port", String(tcp)]);
    const row = await waitFor("second agent registered", 10_000, async () => (await agentsOf(web)).find((a) => a.ip === "127.0.0.2"));
    expect(row).toMatchObject({ udp_port: 0, tcp_port: 0 });
    expect(second.output()).toContain(`udp port ${udp} is in use`);
    expect(second.proc.exitCode).toBeNull();
    // The first agent's responder is untouched.
    expect(await probeOnce(udp, KEY, 7)).toBe(7);
  });

  test("-agent.udp.flow.ports 9-1 exits with a clear message", async () => {
    const r = await run([AGENT_BIN, "-region", "a", "-agent.ip", "127.0.0.1", "-agent.udp.flow.ports", "9-1"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('invalid value "9-1" for flag -agent.udp.flow.ports');
    expect(r.stderr).toContain("the first port is above the last");
    const t = await run([AGENT_BIN, "-region", "a", "-agent.ip", "127.0.0.1", "-agent.tcp.flow.ports", "x"]);
    expect(t.code).toBe(2);
    expect(t.stderr).toContain("-agent.tcp.flow.ports");
  });
});

describe("which flows of a round the agent traces (flowTraceRequests)", () => {
  const flow = (sourcePort: number, sent: number, received: number) => create(FlowStatsSchema, { sourcePort, sent, received });
  const udp = (flows: ReturnType<typeof flow>[]) => create(UdpResultSchema, { targetRegion: "b", address: "10.0.0.9:6010", resolvedIp: "10.0.0.9", dscp: 46, flows });

  test("a lossy flow is traced by its 5-tuple, reason flow_lossy", () => {
    const r = udp([flow(40100, 4, 4), flow(40101, 4, 0), flow(40102, 4, 4), flow(40103, 4, 4)]);
    expect(flowTraceRequests("udp", r, true)).toEqual([
      { kind: "udp", targetRegion: "b", address: "10.0.0.9:6010", ip: "10.0.0.9", destinationPort: 6010, dscp: 46, sourcePort: 40101, reason: "flow_lossy" },
    ]);
  });

  test("a failed round without a lossy flow traces the flow that lost most; a clean round traces nothing", () => {
    const everywhere = udp([flow(40100, 4, 2), flow(40101, 4, 1), flow(40102, 4, 3)]);
    expect(flowTraceRequests("udp", everywhere, true).map((q) => [q.sourcePort, q.reason])).toEqual([[40101, "error_state"]]);
    expect(flowTraceRequests("udp", udp([flow(40100, 4, 4), flow(40101, 4, 4)]), false)).toEqual([]);
  });

  test("tcp: a failed round (no success) traces its worst flow toward the target's host", () => {
    const r = create(TcpResultSchema, { targetRegion: "b", address: "10.0.0.9:6011", success: false, flows: [flow(40200, 1, 1), flow(40201, 1, 0)] });
    expect(flowTraceRequests("tcp", r, false)).toEqual([
      { kind: "tcp", targetRegion: "b", address: "10.0.0.9:6011", ip: "10.0.0.9", destinationPort: 6011, sourcePort: 40201, reason: "error_state" },
    ]);
  });
});
