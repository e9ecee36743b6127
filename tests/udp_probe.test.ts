/**
 * The udp prober (lib/probes/udp/prober.ts) against real responders on 127.0.0.1 / ::1: every flow
 * from its own source port (seen by the responder), per-flow counts, the responder's dwell taken
 * out of the RTT (a paused responder holds the probes), one flow's loss named by lossyFlows,
 * duplicates and RFC 4737 reordering from a test responder that answers twice or out of order, a
 * flow port that cannot be bound, and no mesh key. One-way loss (forward_sent / forward_lost) has
 * its own file, udp_oneway.test.ts; here: nothing lost, nothing counted as lost.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { create } from "@bufbuild/protobuf";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { lossyFlows } from "../lib/probes/flow/lossy.ts";
import { TYPE_REQUEST, parseProbe, toReply } from "../lib/probes/udp/packet.ts";
import { NO_MESH_KEY, UdpProber } from "../lib/probes/udp/prober.ts";
import { UdpResponder } from "../lib/probes/udp/responder.ts";
import { UdpSocket, realtimeUnixNs } from "../lib/probes/udp/socket.ts";
import { udpKind } from "../lib/probes/udp/kind.ts";
import { UdpTargetSchema } from "../lib/rpc/gen/probermesh/v1/udp_pb.ts";

const KEY = new Uint8Array(32).fill(5);
const open: { close(): void }[] = [];
afterAll(() => open.forEach((o) => o.close()));
/** A flow port range of its own per test (random base, so reruns do not meet TIME_WAIT-like leftovers). */
let nextBase = 42000 + Math.floor(Math.random() * 2000) * 4;
const range = (n: number) => {
  const first = nextBase;
  nextBase += n + 4;
  return { first, last: first + n - 1 };
};

function prober(n: number, key: Uint8Array | null = KEY): UdpProber {
  const p = new UdpProber({ flowPorts: range(n), meshKey: () => key ?? undefined });
  open.push(p);
  return p;
}

function target(address: string, m: { count: number; flows: number; intervalMs?: number; timeoutMs?: number }) {
  const module = udpKind.defaultModule();
  module.packetCount = m.count;
  module.flows = m.flows;
  module.interval = durationFromMs(m.intervalMs ?? 2);
  module.timeout = durationFromMs(m.timeoutMs ?? 2000);
  return create(UdpTargetSchema, { targetRegion: "r", address, module });
}

/**
 * A responder written for the test on packet.ts: records the source ports it saw, and can ignore
 * one source port, answer twice, or answer each flow's probes pairwise in reverse order.
 */
class TestResponder {
  readonly socket = new UdpSocket(0);
  readonly seen = new Map<number, number>();
  private held = new Map<number, Uint8Array>();
  private timer = setInterval(() => this.drain(), 1);
  constructor(readonly mode: { ignorePort?: number; twice?: boolean; reorder?: boolean } = {}) {
    open.push(this);
  }
  private drain() {
    this.socket.drain((d) => {
      const buf = d.buf.slice(d.offset, d.offset + d.len);
      const p = parseProbe(buf, d.len, [KEY]);
      if (!p || p.header.type !== TYPE_REQUEST) return;
      this.seen.set(d.sourcePort, (this.seen.get(d.sourcePort) ?? 0) + 1);
      if (d.sourcePort === this.mode.ignorePort) return;
      toReply(buf, KEY, d.rxUnixNs, realtimeUnixNs());
      const to = d.sourceName.slice();
      if (this.mode.reorder) {
        const first = this.held.get(d.sourcePort);
        if (!first) return void this.held.set(d.sourcePort, buf);
        this.held.delete(d.sourcePort);
        this.socket.send(buf, buf.length, to);
        this.socket.send(first, first.length, to);
        return;
      }
      this.socket.send(buf, buf.length, to);
      if (this.mode.twice) this.socket.send(buf, buf.length, to);
    });
  }
  close() {
    clearInterval(this.timer);
    this.socket.close();
  }
}

describe("udp prober", () => {
  for (const host of ["127.0.0.1", "[::1]"]) {
    test(`a round to ${host}: every flow from its own source port, per-flow counts`, async () => {
      const r = new TestResponder();
      const p = prober(4);
      const res = await p.probe(target(`${host}:${r.socket.port}`, { count: 20, flows: 4 }));
      expect(res.error).toBe("");
      expect(res.resolvedIp).toBe(host.replace(/[[\]]/g, ""));
      expect(res.sent).toBe(20);
      expect(res.received).toBe(20);
      expect(res.flows.map((f) => f.sourcePort)).toEqual([0, 1, 2, 3].map((i) => p.flowPorts.first + i));
      for (const f of res.flows) {
        expect(f.sent).toBe(5);
        expect(f.received).toBe(5);
        expect(f.rttMinSeconds).toBeGreaterThan(0);
        expect(f.rttMaxSeconds).toBeGreaterThanOrEqual(f.rttMinSeconds);
      }
      // The responder saw each flow's probes from exactly that flow's port.
      expect([...r.seen.entries()].sort()).toEqual(res.flows.map((f) => [f.sourcePort, 5]));
      expect(res.rttBucketCounts.reduce((a, b) => a + b, 0)).toBe(20);
      expect(res.minSeconds).toBeGreaterThan(0);
      expect(res.meanSeconds).toBeGreaterThanOrEqual(res.minSeconds);
      expect(lossyFlows(res.flows)).toEqual([]);
    });
  }

  test("sequences continue across rounds, and the real responder answers them", async () => {
    const r = new UdpResponder({ port: 0, keys: () => [KEY], drainMs: 1 });
    open.push(r);
    const p = prober(2);
    const t = target(`127.0.0.1:${r.port}`, { count: 6, flows: 2 });
    const a = await p.probe(t);
    const b = await p.probe(t);
    expect([a.received, b.received]).toEqual([6, 6]);
    expect(r.counters.answered).toBe(12);
    // The reflector counts continue too: round 1's spans start at each flow's first reply, round 2's
    // continue from round 1's last; nothing was lost on the way there.
    expect([a.forwardSent, a.forwardLost, b.forwardSent, b.forwardLost]).toEqual([4, 0, 6, 0]);
  });

  test("the responder's dwell is taken out of the RTT: a held reply is not a slow path", async () => {
    const r = new UdpResponder({ port: 0, keys: () => [KEY], drainMs: 1 });
    open.push(r);
    const p = prober(2);
    const holdMs = 600;
    r.pause(true);
    const round = p.probe(target(`127.0.0.1:${r.port}`, { count: 4, flows: 2, intervalMs: 1, timeoutMs: 5000 }));
    await Bun.sleep(holdMs);
    r.pause(false);
    const res = await round;
    expect(res.received).toBe(4);
    // Wall clock from send to reply includes the hold; the RTT does not (it is the loopback's).
    expect(res.durationSeconds).toBeGreaterThanOrEqual(holdMs / 1000 - 0.01);
    expect(res.dwellMeanSeconds).toBeGreaterThan((holdMs - 100) / 1000);
    expect(res.maxSeconds).toBeLessThan(holdMs / 1000 / 2);
    expect(res.maxSeconds).toBeLessThan(res.dwellMeanSeconds);
  });

  test("one flow lost: its counts say so and lossyFlows names it", async () => {
    const p = prober(4);
    const lost = p.flowPorts.first + 2;
    const r = new TestResponder({ ignorePort: lost });
    const res = await p.probe(target(`127.0.0.1:${r.socket.port}`, { count: 40, flows: 4, timeoutMs: 300 }));
    const f = res.flows.find((x) => x.sourcePort === lost)!;
    expect(f.sent).toBe(10);
    expect(f.received).toBe(0);
    expect(res.received).toBe(30);
    expect(r.seen.get(lost)).toBe(10); // it did arrive: the loss is the flow's, after the responder
    expect(lossyFlows(res.flows)).toEqual([lost]);
  });

  test("duplicates: a second reply to a probe is counted once as received and once as duplicate", async () => {
    const r = new TestResponder({ twice: true });
    const p = prober(2);
    const res = await p.probe(target(`127.0.0.1:${r.socket.port}`, { count: 10, flows: 2, intervalMs: 5 }));
    expect(res.received).toBe(10);
    expect(res.duplicates).toBeGreaterThan(0);
    expect(res.flows.reduce((a, f) => a + f.duplicates, 0)).toBe(res.duplicates);
  });

  test("reordering (RFC 4737): replies answered pairwise in reverse are counted per flow", async () => {
    const r = new TestResponder({ reorder: true });
    const p = prober(2);
    const res = await p.probe(target(`127.0.0.1:${r.socket.port}`, { count: 20, flows: 2 }));
    expect(res.received).toBe(20);
    expect(res.reordered).toBe(10);
    for (const f of res.flows) expect(f.reordered).toBe(5);
    // The test responder does not count (0.6-style replies): no one-way numbers.
    expect([res.forwardSent, res.forwardLost]).toEqual([0, 0]);
  });

  test("a flow port that cannot be bound is named in error; the other flows still run", async () => {
    const p = prober(3);
    const busy = new UdpSocket(p.flowPorts.first + 1);
    open.push(busy);
    const r = new TestResponder();
    const res = await p.probe(target(`127.0.0.1:${r.socket.port}`, { count: 6, flows: 3 }));
    expect(res.error).toContain(`flow port ${busy.port} cannot be bound`);
    expect(res.flows.map((f) => f.sent)).toEqual([3, 0, 3]);
    expect(res.received).toBe(6);
  });

  test("no mesh key yet: nothing is sent and the error says why", async () => {
    const r = new TestResponder();
    const p = prober(2, null);
    const res = await p.probe(target(`127.0.0.1:${r.socket.port}`, { count: 4, flows: 2 }));
    expect(res.error).toBe(NO_MESH_KEY);
    expect(res.sent).toBe(0);
    await Bun.sleep(50);
    expect(r.seen.size).toBe(0);
  });

  test("replies under another key or with a foreign nonce are ignored (a spoofed reply fakes no RTT)", async () => {
    const other = new Uint8Array(32).fill(6);
    const r = new UdpResponder({ port: 0, keys: () => [other], drainMs: 1 });
    open.push(r);
    // The prober tags with KEY; this responder knows only `other`: it answers nothing...
    const p = prober(2);
    const res = await p.probe(target(`127.0.0.1:${r.port}`, { count: 4, flows: 2, timeoutMs: 200 }));
    expect(res.received).toBe(0);
    expect(r.counters.dropped.bad_tag).toBe(4);
    // ...and a second prober's replies do not count for the first (the nonce differs).
    const q = prober(2);
    expect(q.nonce).not.toBe(p.nonce);
  });

  test("an aborted round ends at once with what it measured", async () => {
    const r = new TestResponder({ ignorePort: -1 });
    const p = prober(1);
    const ac = new AbortController();
    const round = p.probe(target(`127.0.0.1:${r.socket.port}`, { count: 1000, flows: 1, intervalMs: 10 }), ac.signal);
    await Bun.sleep(50);
    ac.abort();
    const res = await round;
    expect(res.sent).toBeLessThan(1000);
  });
});
