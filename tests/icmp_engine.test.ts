/**
 * The ICMP engine on real sockets: loopback IPv4 and IPv6, two engines on one host, the
 * unprivileged ping-socket path and the message when no ICMP socket is allowed.
 */
import { describe, expect, test } from "bun:test";
import { $ } from "bun";
import { IcmpEngine } from "../lib/probes/icmp/engine.ts";
import { IcmpSocket } from "../lib/probes/icmp/socket.ts";
import { parseEchoReply, writeEchoRequest, internetChecksum } from "../lib/probes/icmp/packet.ts";
import { IS_ROOT, ROOT, run, skipReason } from "./helpers/procs.ts";
import { echoIn } from "./helpers/echobed.ts";
import { createNsPair, netnsAvailable } from "./helpers/netns.ts";

const ECHO = `${ROOT}tests/fixtures/echo.ts`;
const opts = { count: 32, intervalMs: 2, payloadSize: 56, timeoutMs: 1000 };

test("echo request encoding round-trips and corruption is detected (RFC 792 checksum)", () => {
  const token = new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8]);
  const pkt = new Uint8Array(8 + 56);
  writeEchoRequest(pkt, false, 0x1234, 65535, token);
  expect(internetChecksum(pkt)).toBe(0);
  pkt[0] = 0; // turn the request into its reply: type 0, checksum adjusted by +8 << 8
  const c = ((pkt[2]! << 8) | pkt[3]!) + 0x0800;
  const fixed = (c & 0xffff) + (c >>> 16);
  pkt[2] = fixed >> 8;
  pkt[3] = fixed & 0xff;
  expect(parseEchoReply(pkt, 0, pkt.length, false, token)).toEqual({ identifier: 0x1234, sequence: 65535, payloadSize: 56, ok: true });
  pkt[40]! ^= 0xff;
  expect(parseEchoReply(pkt, 0, pkt.length, false, token)!.ok).toBe(false);
  expect(parseEchoReply(pkt, 0, pkt.length, false, new Uint8Array(8))).toBeNull();
});

describe.skipIf(!IS_ROOT)("raw sockets (root)", () => {
  test("loopback IPv4 and IPv6: every request answered, every RTT positive and inside the timeout", async () => {
    const e = new IcmpEngine();
    try {
      const [v4, v6] = await Promise.all([e.echo("127.0.0.1", opts), e.echo("::1", opts)]);
      for (const o of [v4, v6]) {
        if (o.received !== o.sent) console.log(`loss on loopback: first sequence ${o.firstSequence}, answered ${o.requestRttsSeconds.map((x) => (Number.isNaN(x) ? "-" : "+")).join("")}, engine ${JSON.stringify(e.stats)}`);
        expect([o.sent, o.received, o.duplicates, o.corrupted, o.error]).toEqual([32, 32, 0, 0, ""]);
        expect(o.rttsSeconds).toHaveLength(32);
        for (const r of o.rttsSeconds) expect(r).toBeGreaterThan(0);
        for (const r of o.rttsSeconds) expect(r).toBeLessThan(opts.timeoutMs / 1000);
      }
    } finally {
      e.close();
    }
  });

  test("sequence numbers wrap at 2^16 mid-round and continue across rounds (RFC 792 sequence)", async () => {
    const e = new IcmpEngine("raw");
    try {
      const a = await e.echo("127.0.0.1", { ...opts, count: 20, firstSequence: 65530 });
      expect([a.sent, a.received, a.firstSequence]).toEqual([20, 20, 65530]);
      expect(a.requestRttsSeconds.every((r) => r > 0)).toBe(true);
      const b = await e.echo("127.0.0.1", { ...opts, count: 5 });
      expect([b.received, b.firstSequence]).toEqual([5, 14]); // (65530 + 20) mod 65536
      const c = await e.echo("127.0.0.1", { ...opts, count: 5 });
      expect(c.firstSequence).toBe(19);
      expect(e.stats.unmatched).toBe(0);
    } finally {
      e.close();
    }
  });

  test("a released round's buffer serves the next round, which starts clean (no RTT carried over)", async () => {
    const e = new IcmpEngine("raw");
    try {
      const a = await e.echo("127.0.0.1", { ...opts, count: 8 });
      expect(a.received).toBe(8);
      const buffer = a.rttNs.buffer;
      e.release(a);
      e.release(a); // twice is harmless: the buffer is not handed out twice
      new Float64Array(buffer).fill(-1); // what a careless caller might leave behind
      // A 1 µs timeout: every loopback reply comes too late, so each request must read "lost".
      const b = await e.echo("127.0.0.1", { ...opts, count: 8, timeoutMs: 0.001 });
      expect(b.rttNs.buffer).toBe(buffer);
      expect([b.sent, b.received]).toEqual([8, 0]);
      expect(b.requestRttsSeconds.every(Number.isNaN)).toBe(true);
      const c = await e.echo("127.0.0.1", { ...opts, count: 8 });
      expect(c.rttNs.buffer).not.toBe(buffer); // b was not released
    } finally {
      e.close();
    }
  });

  test("drain() on a closed socket returns (a persistent recvmmsg error does not spin the event loop)", () => {
    const sock = new IcmpSocket(false, 1 << 20, "raw");
    sock.close();
    expect(sock.drain(() => {})).toBe(0);
    expect(sock.drainErrors(() => {})).toBe(0);
  });

  test("two engines pinging one target at once never count each other's replies", async () => {
    const a = new IcmpEngine("raw"), b = new IcmpEngine("raw");
    try {
      const [x, y, z] = await Promise.all([a.echo("127.0.0.1", opts), b.echo("127.0.0.1", opts), a.echo("127.0.0.1", opts)]);
      for (const o of [x, y, z]) expect([o.sent, o.received, o.duplicates]).toEqual([32, 32, 0]);
      expect(a.stats.unmatched + b.stats.unmatched).toBe(0);
    } finally {
      a.close();
      b.close();
    }
  });
});

describe("across a veth pair", () => {
  test("IPv4 and ICMPv6 echo to namespace addresses", async () => {
    if (!(await netnsAvailable())) return skipReason("needs root and ip netns for the namespace pair");
    const pair = await createNsPair("v6");
    try {
      for (const { outcome } of await echoIn(pair, [{ ip: pair.farIp6, count: 20 }, { ip: pair.farIp, count: 20 }])) {
        expect([outcome.sent, outcome.received, outcome.error]).toEqual([20, 20, ""]);
        for (const rtt of outcome.rttsSeconds) expect(rtt).toBeGreaterThan(0);
      }
    } finally {
      await pair.remove();
    }
  });
});

describe("socket choice", () => {
  test("ping socket (SOCK_DGRAM) when net.ipv4.ping_group_range allows it", async () => {
    if (!(await netnsAvailable())) return skipReason("needs root and ip netns to set ping_group_range in a private namespace");
    const ns = `pm-pingsock-${process.pid}`;
    await $`ip netns add ${ns}`.quiet();
    try {
      await $`ip -n ${ns} link set lo up`.quiet();
      await $`ip netns exec ${ns} sysctl -qw net.ipv4.ping_group_range=${"0 2147483647"}`.quiet();
      const r = await run(["ip", "netns", "exec", ns, process.execPath, ECHO, JSON.stringify({ prefer: "ping" })]);
      const out = JSON.parse(r.stdout);
      expect(out.socket.kind).toBe("ping");
      expect([out.rounds[0].outcome.sent, out.rounds[0].outcome.received]).toEqual([8, 8]);
    } finally {
      await $`ip netns del ${ns}`.quiet().nothrow();
    }
  });

  test("neither socket allowed: the reason names the sysctl and the capability", async () => {
    if (!(await netnsAvailable())) return skipReason("needs root to drop to an unprivileged user inside a private namespace");
    const ns = `pm-noicmp-${process.pid}`;
    await $`ip netns add ${ns}`.quiet();
    try {
      await $`ip netns exec ${ns} sysctl -qw net.ipv4.ping_group_range=${"1 0"}`.quiet();
      const r = await run(["ip", "netns", "exec", ns, "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", process.execPath, ECHO]);
      const out = JSON.parse(r.stdout);
      expect(out.socket.error).toContain("net.ipv4.ping_group_range");
      expect(out.socket.error).toContain("CAP_NET_RAW");
    } finally {
      await $`ip netns del ${ns}`.quiet().nothrow();
    }
  });
});

if (!IS_ROOT) skipReason("icmp_engine raw-socket tests need root (CAP_NET_RAW)");
