/**
 * The tcp connect probe over flows against packet drops (root): a namespace pair
 * (tests/helpers/netns.ts), a listener in `far`, the prober in `near` (a child process run with
 * `ip netns exec`), and nftables rules in `near`'s own table that drop SYNs of one source port:
 *
 * - only the FIRST SYN of a port (a quota of one SYN): the flow connects after the kernel
 *   retransmits the SYN (initial RTO 1 s), so the round succeeds, yet the flow counts as not
 *   received: TCP_INFO's tcpi_total_retrans saw the retransmission (the claim flow_socket.ts rests on);
 * - every SYN of a port: that flow is never established (failed_reason timeout, the error names
 *   the port), the others are, and over two rounds lossyFlows() names exactly that port;
 * - every SYN of every port, and an abort: the round ends at once, every socket closed.
 *
 * Skipped without root (namespaces and nftables need it).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { fromJson, type JsonValue } from "@bufbuild/protobuf";
import { TcpResultSchema, type TcpResult } from "../lib/rpc/gen/probermesh/v1/tcp_pb.ts";
import { lossyFlows } from "../lib/probes/flow/lossy.ts";
import { createNsPair, netnsAvailable, type NsPair } from "./helpers/netns.ts";
import { nft, nftInstalled } from "./helpers/nft.ts";
import { ROOT, run } from "./helpers/procs.ts";

const LISTEN_PORT = 47400;
const CAN = (await netnsAvailable()) && nftInstalled();
if (!CAN) console.log("[skip] tcp_flows_netns: needs root, ip netns and nft (network namespaces with nftables drop rules)");

let pair: NsPair;
let listener: Bun.Subprocess<"ignore", "pipe", "inherit"> | undefined;

beforeAll(async () => {
  if (!CAN) return;
  pair = await createNsPair("tflow");
  const script = `require("node:net").createServer((c) => c.on("error", () => {})).listen(${LISTEN_PORT}, "::", function () { console.log("ready"); });`;
  listener = Bun.spawn([...pair.inFar, process.execPath, "-e", script], { stdin: "ignore", stdout: "pipe", stderr: "inherit" });
  const reader = listener.stdout.getReader();
  let seen = "";
  while (!seen.includes("ready")) {
    const { value, done } = await reader.read();
    if (done) throw new Error("the listener in the far namespace exited");
    seen += new TextDecoder().decode(value);
  }
  reader.releaseLock();
  await nft(pair.near, "table inet pmflows {\n  chain output { type filter hook output priority 0; policy accept; }\n}");
});

afterAll(async () => {
  if (!CAN) return;
  if (listener) {
    listener.kill();
    await listener.exited;
  }
  await pair.remove();
});

/** A SYN (not a SYN-ACK) from source port(s) `ports` ("47403" or "47420-47423"), as an nft match. */
const synFrom = (ports: string) => `tcp sport ${ports} tcp flags & (syn | ack) == syn`;

interface ChildOut {
  results: JsonValue[];
  fdsBefore: number;
  fdsAfter: number;
}

/**
 * Runs `rounds` probes of `address` with `keys` (a probe file's tcp: module) from `near`, with
 * flow ports `ports`; `abortAfterMs` aborts the round. Counts the child's open fds before and after.
 */
async function probeFromNear(address: string, keys: Record<string, unknown>, ports: string, rounds = 1, abortAfterMs = 0): Promise<{ results: TcpResult[]; fdsBefore: number; fdsAfter: number }> {
  const script = `
    import { readdirSync } from "node:fs";
    import { create, toJson } from "@bufbuild/protobuf";
    import { TcpResultSchema, TcpTargetSchema } from "${ROOT}lib/rpc/gen/probermesh/v1/tcp_pb.ts";
    import { tcpKind } from "${ROOT}lib/probes/tcp/kind.ts";
    import { TcpProber } from "${ROOT}lib/probes/tcp/prober.ts";
    import { parsePortRange } from "${ROOT}lib/probes/flow/ports.ts";
    const fds = () => readdirSync("/proc/self/fd").length;
    const p = new TcpProber({ flowPorts: parsePortRange(${JSON.stringify(ports)}) });
    const target = create(TcpTargetSchema, { targetRegion: "far", address: ${JSON.stringify(address)}, module: tcpKind.moduleSchema("/").parse(${JSON.stringify(keys)}) });
    const fdsBefore = fds();
    const results = [];
    for (let i = 0; i < ${rounds}; i++) {
      const ac = new AbortController();
      if (${abortAfterMs} > 0) setTimeout(() => ac.abort(), ${abortAfterMs});
      results.push(toJson(TcpResultSchema, await p.probe(target, ac.signal)));
    }
    console.log(JSON.stringify({ results, fdsBefore, fdsAfter: fds() }));
  `;
  const r = await run([...pair.inNear, process.execPath, "-e", script]);
  if (r.code !== 0) throw new Error(`prober in ${pair.near} failed (${r.code}): ${r.stderr}`);
  const out = JSON.parse(r.stdout) as ChildOut;
  return { results: out.results.map((j) => fromJson(TcpResultSchema, j)), fdsBefore: out.fdsBefore, fdsAfter: out.fdsAfter };
}

const flowRows = (r: TcpResult) => r.flows.map((f) => [f.sourcePort, f.sent, f.received]);

describe.skipIf(!CAN)("connect probe over flows with SYN drops (netns, nftables)", () => {
  for (const family of ["ipv4", "ipv6"] as const) {
    test(`${family}: the first SYN of one port dropped: that flow connects after a retransmission (success) but counts as not received`, async () => {
      const far = family === "ipv4" ? pair.farIp : `[${pair.farIp6}]`;
      // One SYN passes the quota (60 bytes IPv4, 80 IPv6, under 100); the retransmission does not.
      await nft(pair.near, `add rule inet pmflows output meta nfproto ${family} ${synFrom("47403")} quota until 100 bytes counter drop`);
      const { results: [r] } = await probeFromNear(`${far}:${LISTEN_PORT}`, { flows: 6, timeout: "5s" }, "47400-47405");
      expect([r!.success, r!.failedReason, r!.error]).toEqual([true, "", ""]);
      expect(flowRows(r!)).toEqual([[47400, 1, 1], [47401, 1, 1], [47402, 1, 1], [47403, 1, 0], [47404, 1, 1], [47405, 1, 1]]);
      const f3 = r!.flows[3]!;
      expect([f3.rttMeanSeconds, f3.rttMinSeconds, f3.rttMaxSeconds]).toEqual([0, 0, 0]);
      // The kernel retransmits a SYN after its initial RTO (1 s, RFC 6298): the round waited for it.
      expect(r!.durationSeconds).toBeGreaterThanOrEqual(1);
      for (const f of r!.flows.filter((x) => x.received)) {
        expect(f.rttMeanSeconds).toBeGreaterThan(0);
        expect(f.rttMeanSeconds).toBeLessThanOrEqual(r!.durationSeconds);
      }
      const received = r!.flows.filter((x) => x.received);
      expect(r!.connectSeconds).toBeCloseTo(received.reduce((s, f) => s + f.rttMeanSeconds, 0) / received.length, 9);
      const rules = await nft(pair.near, "list chain inet pmflows output");
      expect(rules).toMatch(new RegExp(`nfproto ${family}.*counter packets 1 `));
    });
  }

  test("every SYN of one port dropped: that flow times out, the others connect; over two rounds lossyFlows names exactly that port", async () => {
    await nft(pair.near, `add rule inet pmflows output ${synFrom("47416")} drop`);
    const { results } = await probeFromNear(`${pair.farIp}:${LISTEN_PORT}`, { flows: 8, timeout: "2s" }, "47410-47417", 2);
    const sums = new Map<number, { sourcePort: number; sent: number; received: number }>();
    for (const r of results) {
      expect([r.success, r.failedReason, r.error]).toEqual([false, "timeout", "source port 47416: not established within the 2s timeout"]);
      expect(flowRows(r)).toEqual([47410, 47411, 47412, 47413, 47414, 47415, 47416, 47417].map((p) => [p, 1, p === 47416 ? 0 : 1]));
      expect(r.connectSeconds).toBeGreaterThan(0);
      for (const f of r.flows) {
        const s = sums.get(f.sourcePort) ?? { sourcePort: f.sourcePort, sent: 0, received: 0 };
        s.sent += f.sent;
        s.received += f.received;
        sums.set(f.sourcePort, s);
      }
      // One round alone is no signature (a flow must have sent LOSSY_MIN_SENT probes).
      expect(lossyFlows(r.flows)).toEqual([]);
    }
    expect(lossyFlows([...sums.values()])).toEqual([47416]);
  });

  test("every SYN dropped and the round aborted: failed_reason timeout, every flow sent, none received, every socket closed", async () => {
    await nft(pair.near, `add rule inet pmflows output ${synFrom("47420-47423")} drop`);
    const { results: [r], fdsBefore, fdsAfter } = await probeFromNear(`${pair.farIp}:${LISTEN_PORT}`, { flows: 4, timeout: "20s" }, "47420-47423", 1, 300);
    expect([r!.success, r!.failedReason, r!.error]).toEqual([false, "timeout", "source ports 47420-47423: aborted before established"]);
    expect(flowRows(r!)).toEqual([[47420, 1, 0], [47421, 1, 0], [47422, 1, 0], [47423, 1, 0]]);
    expect(fdsAfter).toBe(fdsBefore);
  });
});
