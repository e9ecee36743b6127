/**
 * One-way loss of the udp kind's requests (lib/probes/udp/oneway.ts, reflector.ts; issue 20):
 *
 * - the reflector count's bytes on the wire (covered by the tag) and FlowSequence's arithmetic
 *   (spans, reordered replies, resets, the long-silence bound, both wraps);
 * - the real prober against a 0.6-style responder (count 0): forward 0 / 0;
 * - the real prober and responder on loopback: spans across rounds (every request of a later
 *   round is in a span), a restarted responder resets without a false loss;
 * - real sockets in two network namespaces (root), an nftables rule in the responder's namespace
 *   dropping 30 % of the udp to or from its port: inbound drops are forward loss, with the exact
 *   identity forward_sent - forward_lost = replies - flows that answered (no reply is lost, each
 *   flow's first reply opens its spans); outbound drops lose replies and no request (forward_lost 0).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { create, fromJson, type JsonValue } from "@bufbuild/protobuf";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { MAX_COUNT, TYPE_REQUEST, parseProbe, toReply, writeRequest } from "../lib/probes/udp/packet.ts";
import { FlowSequence, MAX_SPAN } from "../lib/probes/udp/oneway.ts";
import { UdpProber } from "../lib/probes/udp/prober.ts";
import { UdpResponder } from "../lib/probes/udp/responder.ts";
import { UdpSocket, realtimeUnixNs } from "../lib/probes/udp/socket.ts";
import { udpKind } from "../lib/probes/udp/kind.ts";
import { UdpResultSchema, UdpTargetSchema, type UdpResult } from "../lib/rpc/gen/probermesh/v1/udp_pb.ts";
import { createNsPair, netnsAvailable, type NsPair } from "./helpers/netns.ts";
import { nft, nftInstalled } from "./helpers/nft.ts";
import { ROOT, run, skipReason } from "./helpers/procs.ts";

const KEY = new Uint8Array(32).fill(11);
const open: { close(): void }[] = [];
afterAll(() => open.forEach((o) => o.close()));
let nextBase = 44000 + Math.floor(Math.random() * 200) * 20;

function prober(flows: number): UdpProber {
  const p = new UdpProber({ flowPorts: { first: nextBase, last: nextBase + flows - 1 }, meshKey: () => KEY });
  nextBase += flows + 4;
  open.push(p);
  return p;
}

function target(address: string, count: number, flows: number) {
  const module = udpKind.defaultModule();
  module.packetCount = count;
  module.flows = flows;
  module.interval = durationFromMs(1);
  module.timeout = durationFromMs(1000);
  return create(UdpTargetSchema, { targetRegion: "r", address, module });
}

describe("wire format and arithmetic", () => {
  test("the reflector count travels in bytes 20..23 of a reply, under the tag; a request carries 0", () => {
    const b = new Uint8Array(64);
    writeRequest(b, KEY, { dscp: 0, flags: 0, nonce: 7n, sequence: 9 });
    expect(parseProbe(b, 64, [KEY])!.header.count).toBe(0);
    for (const count of [1, 4096, MAX_COUNT]) {
      toReply(b, KEY, 1n, 2n, count);
      expect(Buffer.from(b.subarray(20, 24)).readUInt32BE()).toBe(count);
      expect(parseProbe(b, 64, [KEY])!.header).toMatchObject({ sequence: 9, count, rxNs: 1n, txNs: 2n });
    }
    toReply(b, KEY, 1n, 2n); // a 0.6 responder: "reserved, 0"
    expect(parseProbe(b, 64, [KEY])!.header.count).toBe(0);
    b[23] = 5; // a count changed on the way: the tag no longer verifies
    expect(parseProbe(b, 64, [KEY])).toBeNull();
  });

  test("spans: sent since the last reply, lost = sent - arrived; reordered replies ignored; resets; the long-silence bound; wraps", () => {
    const s = new FlowSequence(0xfffffffe); // sequences wrap within the test
    const seqs = Array.from({ length: 8 }, () => s.take());
    expect(seqs.slice(0, 3)).toEqual([0xfffffffe, 0xffffffff, 0]);
    expect(s.reply(seqs[0]!, 10)).toEqual({ sent: 0, lost: 0 }); // the first reply opens the spans
    expect(s.reply(seqs[3]!, 11)).toEqual({ sent: 3, lost: 2 }); // 3 sent since, 1 arrived: across the sequence wrap
    expect(s.reply(seqs[2]!, 12)).toEqual({ sent: 0, lost: 0 }); // older than the remembered: reordered back
    expect(s.reply(seqs[3]!, 11)).toEqual({ sent: 0, lost: 0 }); // a duplicate
    expect(s.reply(seqs[4]!, 0)).toEqual({ sent: 0, lost: 0 }); // not counted (0.6): nothing, nothing forgotten
    expect(s.reply(seqs[5]!, 13)).toEqual({ sent: 2, lost: 0 });
    expect(s.reply(seqs[6]!, 1)).toEqual({ sent: 0, lost: 0 }); // the count went down: the responder restarted, reset
    expect(s.reply(seqs[7]!, 2)).toEqual({ sent: 1, lost: 0 }); // ...and counting goes on from there
    // More arrivals than requests (duplicated or reordered on the way there): reset, no loss made up.
    const d = new FlowSequence(100);
    d.reply(100, 5);
    expect(d.reply(102, 9)).toEqual({ sent: 0, lost: 0 });
    expect(d.reply(103, 10)).toEqual({ sent: 1, lost: 0 });
    // A span longer than MAX_SPAN is not counted, the next one is.
    expect(d.reply(103 + MAX_SPAN + 1, 11)).toEqual({ sent: 0, lost: 0 });
    expect(d.reply(103 + MAX_SPAN + 1 + MAX_SPAN, 11 + MAX_SPAN)).toEqual({ sent: MAX_SPAN, lost: 0 });
    // The count wraps from MAX_COUNT to 1 (0 means "not counted"): one step, not two.
    const w = new FlowSequence(0);
    w.reply(0, MAX_COUNT - 1);
    expect(w.reply(2, MAX_COUNT)).toEqual({ sent: 2, lost: 1 });
    expect(w.reply(3, 1)).toEqual({ sent: 1, lost: 0 });
  });
});

describe("prober and responder on loopback", () => {
  test("a 0.6-style responder (count 0): replies arrive, forward_sent and forward_lost stay 0", async () => {
    const sock = new UdpSocket(0);
    open.push(sock);
    const timer = setInterval(() => sock.drain((d) => {
      const buf = d.buf.slice(d.offset, d.offset + d.len);
      if (parseProbe(buf, d.len, [KEY])?.header.type !== TYPE_REQUEST) return;
      toReply(buf, KEY, d.rxUnixNs, realtimeUnixNs()); // as 0.6 wrote it: bytes 20..23 left 0
      sock.send(buf, buf.length, d.sourceName.slice());
    }), 1);
    open.push({ close: () => clearInterval(timer) });
    const p = prober(2);
    const t = target(`127.0.0.1:${sock.port}`, 8, 2);
    for (let i = 0; i < 2; i++) {
      const r = await p.probe(t);
      expect([r.received, r.forwardSent, r.forwardLost]).toEqual([8, 0, 0]);
    }
  });

  test("spans run across rounds; a restarted responder resets each flow's counting without a false loss", async () => {
    const first = new UdpResponder({ port: 0, keys: () => [KEY], drainMs: 1, ipv4Only: true });
    open.push(first);
    const p = prober(4);
    const t = target(`127.0.0.1:${first.port}`, 16, 4);
    const rounds: UdpResult[] = [];
    for (let i = 0; i < 3; i++) rounds.push(await p.probe(t));
    first.close();
    const second = new UdpResponder({ port: first.port, keys: () => [KEY], drainMs: 1, ipv4Only: true });
    open.push(second);
    rounds.push(await p.probe(t));
    expect(rounds.map((r) => r.received)).toEqual([16, 16, 16, 16]);
    // Round 1: each flow's first reply opens its spans (16 - 4 flows); later rounds continue them;
    // after the restart each flow's count went down (reset at its first reply).
    expect(rounds.map((r) => [r.forwardSent, r.forwardLost])).toEqual([[12, 0], [16, 0], [16, 0], [12, 0]]);
  });
});

const CAN = (await netnsAvailable()) && nftInstalled();
if (!CAN) skipReason("udp_oneway netns: needs root, ip netns and nft (a prober and a responder namespace with nftables drops)");
const RESPONDER_PORT = 47600;
const FLOWS = 16;
let pair: NsPair;
let responder: Bun.Subprocess<"ignore", "pipe", "inherit"> | undefined;
const keyHex = Buffer.from(KEY).toString("hex");

beforeAll(async () => {
  if (!CAN) return;
  pair = await createNsPair("oneway");
  const script = `
    import { UdpResponder } from "${ROOT}lib/probes/udp/responder.ts";
    new UdpResponder({ port: ${RESPONDER_PORT}, keys: () => [Uint8Array.from(Buffer.from("${keyHex}", "hex"))], ipv4Only: true, maxRate: 1e6, perSourceRate: 1e6 });
    console.log("ready");
  `;
  responder = Bun.spawn([...pair.inFar, process.execPath, "-e", script], { stdin: "ignore", stdout: "pipe", stderr: "inherit" });
  const reader = responder.stdout.getReader();
  let seen = "";
  while (!seen.includes("ready")) {
    const { value, done } = await reader.read();
    if (done) throw new Error("the responder in the far namespace exited");
    seen += new TextDecoder().decode(value);
  }
  reader.releaseLock();
  await nft(pair.far, "table inet pmoneway {\n  chain input { type filter hook input priority 0; policy accept; }\n  chain output { type filter hook output priority 0; policy accept; }\n}");
});

afterAll(async () => {
  if (!CAN) return;
  if (responder) {
    responder.kill();
    await responder.exited;
  }
  await pair.remove();
});

/** Runs `rounds` rounds of `count` probes over FLOWS flows from the near namespace to the responder; also how many flows got a reply. */
async function probeFromNear(rounds: number, count: number): Promise<{ results: UdpResult[]; flowsAnswered: number }> {
  const script = `
    import { create, toJson } from "@bufbuild/protobuf";
    import { durationFromMs } from "@bufbuild/protobuf/wkt";
    import { UdpResultSchema, UdpTargetSchema } from "${ROOT}lib/rpc/gen/probermesh/v1/udp_pb.ts";
    import { udpKind } from "${ROOT}lib/probes/udp/kind.ts";
    import { UdpProber } from "${ROOT}lib/probes/udp/prober.ts";
    const key = Uint8Array.from(Buffer.from("${keyHex}", "hex"));
    const p = new UdpProber({ flowPorts: { first: 47610, last: ${47610 + FLOWS - 1} }, meshKey: () => key });
    const module = udpKind.defaultModule();
    Object.assign(module, { packetCount: ${count}, flows: ${FLOWS}, interval: durationFromMs(1), timeout: durationFromMs(500) });
    const target = create(UdpTargetSchema, { targetRegion: "far", address: "${pair.farIp}:${RESPONDER_PORT}", module });
    const results = [];
    for (let i = 0; i < ${rounds}; i++) results.push(toJson(UdpResultSchema, await p.probe(target)));
    p.close();
    console.log(JSON.stringify(results));
  `;
  const r = await run([...pair.inNear, process.execPath, "-e", script]);
  if (r.code !== 0) throw new Error(`prober in ${pair.near} failed (${r.code}): ${r.stderr}`);
  const results = (JSON.parse(r.stdout) as JsonValue[]).map((j) => fromJson(UdpResultSchema, j));
  const answered = new Set<number>();
  for (const x of results) for (const f of x.flows) if (f.received > 0) answered.add(f.sourcePort);
  return { results, flowsAnswered: answered.size };
}

const sum = (rs: UdpResult[], f: (r: UdpResult) => number) => rs.reduce((a, r) => a + f(r), 0);

describe.skipIf(!CAN)("one-way loss through namespaces with nftables drops at the responder", () => {
  test("30 % of the requests dropped on the way in: forward loss, and every lost request inside a span is counted", async () => {
    await nft(pair.far, `flush chain inet pmoneway input\nadd rule inet pmoneway input udp dport ${RESPONDER_PORT} numgen random mod 100 < 30 drop`);
    const { results, flowsAnswered } = await probeFromNear(2, 160);
    const sent = sum(results, (r) => r.sent), received = sum(results, (r) => r.received);
    const fwdSent = sum(results, (r) => r.forwardSent), fwdLost = sum(results, (r) => r.forwardLost);
    console.log(`inbound drop: sent ${sent}, received ${received}, forward sent ${fwdSent}, forward lost ${fwdLost}, flows answered ${flowsAnswered}`);
    expect(received).toBeLessThan(sent);
    expect(fwdLost).toBeGreaterThan(0);
    // No reply is lost: what is not forward loss inside a span is a request before a flow's first
    // reply or after its last one (outside every span).
    expect(received + fwdLost).toBeLessThanOrEqual(sent);
    // Each reply after a flow's first closes a span whose arrivals are exactly the replies in it.
    expect(fwdSent - fwdLost).toBe(received - flowsAnswered);
    for (const r of results) expect(r.forwardLost).toBeLessThan(r.forwardSent);
  });

  test("30 % of the replies dropped on the way out: loss, but no forward loss", async () => {
    await nft(pair.far, `flush chain inet pmoneway input\nflush chain inet pmoneway output\nadd rule inet pmoneway output udp sport ${RESPONDER_PORT} numgen random mod 100 < 30 drop`);
    const { results, flowsAnswered } = await probeFromNear(2, 160);
    const sent = sum(results, (r) => r.sent), received = sum(results, (r) => r.received);
    const fwdSent = sum(results, (r) => r.forwardSent);
    console.log(`outbound drop: sent ${sent}, received ${received}, forward sent ${fwdSent}, forward lost ${sum(results, (r) => r.forwardLost)}`);
    expect(received).toBeLessThan(sent);
    // Every request arrived: each span's requests all count as arrived, replies lost or not.
    expect(fwdSent).toBeGreaterThanOrEqual(received - flowsAnswered);
    expect(results.map((r) => r.forwardLost)).toEqual([0, 0]);
  });
});
